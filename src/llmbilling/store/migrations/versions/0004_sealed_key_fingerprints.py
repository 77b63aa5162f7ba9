"""Sealed secrets record the fingerprint of the key that sealed them.

Existing rows keep NULL: a migration does not hold the key. The start check authenticates a
sample of them instead, and ``llmbilling secrets rotate`` re-seals them with a fingerprint.

Revision ID: 0004_sealed_key_fingerprints
Revises: 0003_console_sessions
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision: str = "0004_sealed_key_fingerprints"
down_revision: str | None = "0003_console_sessions"
branch_labels: str | None = None
depends_on: str | None = None

_SECRET_TABLES = ("org_secrets", "workspace_secrets")


def upgrade() -> None:
    for table in _SECRET_TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("key_fingerprint", sa.Text(), nullable=True))


def downgrade() -> None:
    for table in _SECRET_TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("key_fingerprint")
