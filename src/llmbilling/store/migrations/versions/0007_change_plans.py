"""Change plans: a previewed change, bound to the versions of what its preview read.

A plan is applied only while every input family it observed is unchanged (409 otherwise);
it expires, may need a second admin's approval, and names its proposer, approver and applier.

Revision ID: 0007_change_plans
Revises: 0006_override_expiry
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0007_change_plans"
down_revision: str | None = "0006_override_expiry"
branch_labels: str | None = None
depends_on: str | None = None


def upgrade() -> None:
    op.create_table(
        "change_plans",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("change", sa.JSON(), nullable=False),
        sa.Column("org_id", sa.Uuid(), nullable=True),
        sa.Column("workspace_id", sa.Uuid(), nullable=True),
        sa.Column("observed", sa.JSON(), nullable=False),
        sa.Column("summary", sa.JSON(), nullable=False),
        sa.Column("dangerous", sa.Boolean(), nullable=False),
        sa.Column("state", sa.Text(), nullable=False),
        sa.Column("proposed_by", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("approved_by", sa.Text(), nullable=True),
        sa.Column("approved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("applied_by", sa.Text(), nullable=True),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "state IN ('proposed', 'approved', 'applied')", name="ck_change_plans_state"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_change_plans"),
    )
    op.create_index("ix_change_plans_org_id", "change_plans", ["org_id"])


def downgrade() -> None:
    op.drop_index("ix_change_plans_org_id", table_name="change_plans")
    op.drop_table("change_plans")
