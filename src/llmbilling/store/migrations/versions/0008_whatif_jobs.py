"""What-if jobs in the store: state, progress, who asked, proposal and report, leased by the
worker running them, so every replica sees them and a restart forgets none.

Revision ID: 0008_whatif_jobs
Revises: 0007_change_plans
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0008_whatif_jobs"
down_revision: str | None = "0007_change_plans"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "whatif_jobs",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("org_id", sa.Uuid(), nullable=True),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("done", sa.BigInteger(), nullable=False),
        sa.Column("total", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("requested_by", sa.Text(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("lease_owner", sa.Text(), nullable=True),
        sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("proposed_policy", sa.JSON(), nullable=True),
        sa.Column("proposed_registry", sa.JSON(), nullable=True),
        sa.Column("report", sa.JSON(), nullable=True),
        sa.Column("error_code", sa.Text(), nullable=True),
        sa.Column("error_message", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "state IN ('queued', 'running', 'succeeded', 'failed')", name="ck_whatif_jobs_state"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_whatif_jobs"),
    )
    op.create_index("ix_whatif_jobs_org_id_created_at", "whatif_jobs", ["org_id", "created_at"])
    op.create_index("ix_whatif_jobs_state_created_at", "whatif_jobs", ["state", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_whatif_jobs_state_created_at", table_name="whatif_jobs")
    op.drop_index("ix_whatif_jobs_org_id_created_at", table_name="whatif_jobs")
    op.drop_table("whatif_jobs")
