"""Console sessions: server-side, so logout, revocation and expiry end them.

Revision ID: 0003_console_sessions
Revises: 0002_api_tokens_row_versions
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0003_console_sessions"
down_revision: str | None = "0002_api_tokens_row_versions"
branch_labels: str | None = None
depends_on: str | None = None

# Frozen copies, not imports: a migration must keep meaning what it meant when it shipped.
_TIMESTAMP = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "console_sessions",
        # SHA-256 (hex) of the session secret; the secret itself lives only in the cookie.
        sa.Column("id", sa.Text(), nullable=False),
        sa.Column("token_id", sa.Uuid(), nullable=False),
        sa.Column("created_at", _TIMESTAMP, nullable=False),
        sa.Column("last_seen_at", _TIMESTAMP, nullable=False),
        sa.Column("expires_at", _TIMESTAMP, nullable=False),
        sa.Column("ended_at", _TIMESTAMP, nullable=True),
        sa.ForeignKeyConstraint(
            ["token_id"], ["api_tokens.id"], name="fk_console_sessions_token_id_api_tokens"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_console_sessions"),
    )
    op.create_index("ix_console_sessions_token_id", "console_sessions", ["token_id"])


def downgrade() -> None:
    op.drop_index("ix_console_sessions_token_id", table_name="console_sessions")
    op.drop_table("console_sessions")
