"""Admin API: bearer tokens, and row versions for compare-and-set writes.

Revision ID: 0002_api_tokens_row_versions
Revises: 0001_initial
Create Date: 2025-02-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0002_api_tokens_row_versions"
down_revision: str | None = "0001_initial"
branch_labels: str | None = None
depends_on: str | None = None

# Frozen copies, not imports: a migration must keep meaning what it meant when it shipped.
_SCOPES_SQL = "'admin', 'org_admin', 'provisioner', 'viewer'"
_TIMESTAMP = sa.DateTime(timezone=True)
_VERSIONED_TABLES = ("organizations", "workspaces")


def upgrade() -> None:
    for table in _VERSIONED_TABLES:
        # Existing rows start at version 1, like new ones.
        op.add_column(
            table, sa.Column("row_version", sa.Integer(), server_default="1", nullable=False)
        )
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("scope", sa.Text(), nullable=False),
        sa.Column("org_id", sa.Uuid(), nullable=True),
        sa.Column("token_hash", sa.Text(), nullable=False),
        sa.Column("created_at", _TIMESTAMP, nullable=False),
        sa.Column("revoked_at", _TIMESTAMP, nullable=True),
        sa.CheckConstraint(f"scope IN ({_SCOPES_SQL})", name="ck_api_tokens_scope"),
        sa.CheckConstraint(
            "(scope = 'admin' AND org_id IS NULL) OR (scope <> 'admin' AND org_id IS NOT NULL)",
            name="ck_api_tokens_scope_org",
        ),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organizations.id"], name="fk_api_tokens_org_id_organizations"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_api_tokens"),
        sa.UniqueConstraint("token_hash", name="uq_api_tokens_token_hash"),
    )
    op.create_index("ix_api_tokens_org_id", "api_tokens", ["org_id"])


def downgrade() -> None:
    op.drop_index("ix_api_tokens_org_id", table_name="api_tokens")
    op.drop_table("api_tokens")
    for table in reversed(_VERSIONED_TABLES):
        op.drop_column(table, "row_version")
