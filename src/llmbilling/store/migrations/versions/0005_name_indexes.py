"""Indexes for finding things on a big fleet: the org listing's (name, id) keyset order, and
``lower(name)`` of orgs and workspaces for lookups ignoring case (``text_pattern_ops`` on
PostgreSQL, so a left-anchored ``LIKE`` uses the index under any collation).

Revision ID: 0005_name_indexes
Revises: 0004_sealed_key_fingerprints
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0005_name_indexes"
down_revision: str | None = "0004_sealed_key_fingerprints"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_index("ix_organizations_name_id", "organizations", ["name", "id"])
    for table in ("organizations", "workspaces"):
        op.create_index(
            f"ix_{table}_lower_name",
            table,
            [sa.func.lower(sa.text("name")).label("lower_name")],
            postgresql_ops={"lower_name": "text_pattern_ops"},
        )


def downgrade() -> None:
    for table in ("organizations", "workspaces"):
        op.drop_index(f"ix_{table}_lower_name", table_name=table)
    op.drop_index("ix_organizations_name_id", table_name="organizations")
