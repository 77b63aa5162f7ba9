"""A workspace override may expire: past ``override_expires_at`` it no longer decides.

NULL (every existing row) means the override does not expire.

Revision ID: 0006_override_expiry
Revises: 0005_name_indexes
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0006_override_expiry"
down_revision: str | None = "0005_name_indexes"
branch_labels: str | None = None
depends_on: str | None = None


# Plain ALTER TABLE on both engines (SQLite has both since 3.35): a batch operation would
# rebuild the table on SQLite and lose its expression index (0005_name_indexes).


def upgrade() -> None:
    op.add_column(
        "workspaces", sa.Column("override_expires_at", sa.DateTime(timezone=True), nullable=True)
    )


def downgrade() -> None:
    op.execute("ALTER TABLE workspaces DROP COLUMN override_expires_at")
