"""The schema (spec §5) as SQLAlchemy Core tables. Migrations create exactly this; a test
compares the migrated database with these definitions."""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Table,
    Text,
    UniqueConstraint,
    Uuid,
    func,
    text,
)

from llmbilling.core.modes import MODE_VALUES

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
DEFAULT_RUNTIME = "claude-code"
MODES_SQL = ", ".join(f"'{mode}'" for mode in MODE_VALUES)
# The API token scopes (``llmbilling.service.tokens.Scope``; a test keeps the two equal).
TOKEN_SCOPE_VALUES = ("admin", "org_admin", "provisioner", "viewer")
TOKEN_SCOPES_SQL = ", ".join(f"'{scope}'" for scope in TOKEN_SCOPE_VALUES)

metadata = MetaData(naming_convention=NAMING_CONVENTION)

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT identity.
AutoId = BigInteger().with_variant(Integer(), "sqlite")
Timestamp = DateTime(timezone=True)


def _row_version() -> Column[int]:
    # Bumped by every write of the row; compare-and-set writes put the expected value in their
    # WHERE clause (HTTP If-Match), so two writers cannot both win.
    return Column("row_version", Integer(), nullable=False, server_default="1")


organizations = Table(
    "organizations",
    metadata,
    Column("id", Uuid(), primary_key=True),
    Column("name", Text(), nullable=False),
    # Raw text as configured (spec §5): normalized when read, so garbled values survive.
    Column("llm_billing_mode_default", Text(), nullable=True),
    Column("created_at", Timestamp, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
    _row_version(),
    # The org listing pages by (name, id); names are looked up ignoring case (store/orgs.py).
    Index("ix_organizations_name_id", "name", "id"),
    Index(
        "ix_organizations_lower_name",
        func.lower(text("name")).label("lower_name"),
        postgresql_ops={"lower_name": "text_pattern_ops"},
    ),
)

workspaces = Table(
    "workspaces",
    metadata,
    Column("id", Uuid(), primary_key=True),
    Column("org_id", Uuid(), ForeignKey("organizations.id"), nullable=False),
    Column("name", Text(), nullable=True),
    Column("runtime", Text(), nullable=False, server_default=DEFAULT_RUNTIME),
    Column("model", Text(), nullable=True),
    # NULL = inherit. Our API writes only modes; rows from other tools are tolerated on read.
    Column("llm_billing_mode", Text(), nullable=True),
    Column("created_at", Timestamp, nullable=False),
    Column("updated_at", Timestamp, nullable=False),
    _row_version(),
    # NULL = the override does not expire; past it, the override no longer decides.
    Column("override_expires_at", Timestamp, nullable=True),
    CheckConstraint(f"llm_billing_mode IN ({MODES_SQL})", name="llm_billing_mode"),
    # An org's workspaces in id order (its pages, its previews and what-ifs) are one range.
    Index(None, "org_id", "id"),
    Index(
        "ix_workspaces_lower_name",
        func.lower(text("name")).label("lower_name"),
        postgresql_ops={"lower_name": "text_pattern_ops"},
    ),
)


def _secrets_table(name: str, owner_column: str, owner_table: str) -> Table:
    # The primary key (owner, key) is also the index every by-owner read uses.
    return Table(
        name,
        metadata,
        Column(
            owner_column,
            Uuid(),
            ForeignKey(f"{owner_table}.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        Column("key", Text(), primary_key=True),
        Column("ciphertext", Text(), nullable=False),
        Column("key_version", Integer(), nullable=False),
        Column("updated_at", Timestamp, nullable=False),
        # Which key sealed the value (store/crypto.py key_fingerprint); NULL: sealed before
        # fingerprints were stored, until the next rotation re-seals it.
        Column("key_fingerprint", Text(), nullable=True),
    )


org_secrets = _secrets_table("org_secrets", "org_id", "organizations")
workspace_secrets = _secrets_table("workspace_secrets", "workspace_id", "workspaces")

# Append-only: no code path updates or deletes; triggers reject it on both engines.
# No foreign keys: the record must outlive what it describes.
audit_log = Table(
    "audit_log",
    metadata,
    Column("id", AutoId, primary_key=True, autoincrement=True),
    Column("occurred_at", Timestamp, nullable=False),
    Column("actor", Text(), nullable=False),
    Column("action", Text(), nullable=False),
    Column("org_id", Uuid(), nullable=True),
    Column("workspace_id", Uuid(), nullable=True),
    Column("before", JSON(), nullable=True),
    Column("after", JSON(), nullable=True),
    Column("request_id", Text(), nullable=False),
    Index(None, "workspace_id"),
    Index(None, "org_id"),
)

provisions = Table(
    "provisions",
    metadata,
    Column("id", AutoId, primary_key=True, autoincrement=True),
    Column(
        "workspace_id",
        Uuid(),
        ForeignKey("workspaces.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("provisioned_at", Timestamp, nullable=False),
    Column("mode", Text(), nullable=False),
    Column("source", Text(), nullable=False),
    Column("provider", Text(), nullable=True),
    Column("model", Text(), nullable=True),
    Column("policy_version", Text(), nullable=False),
    Column("registry_version", Text(), nullable=True),
    Column("flipped_from", Text(), nullable=True),
    Column("request_id", Text(), nullable=False),
    CheckConstraint(f"mode IN ({MODES_SQL})", name="mode"),
    # "The last provision of a workspace" is one index probe.
    Index(None, "workspace_id", "id"),
)

# Bearer tokens of the admin API, stored as SHA-256 of the token (the token itself is shown
# once, at creation). ``admin`` tokens span every org; every other scope names exactly one.
api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", Uuid(), primary_key=True),
    Column("name", Text(), nullable=True),
    Column("scope", Text(), nullable=False),
    Column("org_id", Uuid(), ForeignKey("organizations.id"), nullable=True),
    Column("token_hash", Text(), nullable=False),
    Column("created_at", Timestamp, nullable=False),
    Column("revoked_at", Timestamp, nullable=True),
    CheckConstraint(f"scope IN ({TOKEN_SCOPES_SQL})", name="scope"),
    CheckConstraint(
        "(scope = 'admin' AND org_id IS NULL) OR (scope <> 'admin' AND org_id IS NOT NULL)",
        name="scope_org",
    ),
    UniqueConstraint("token_hash"),
    Index(None, "org_id"),
)

# Console sign-ins (API.md, console). The key is SHA-256 (hex) of the session secret; the
# secret lives only in the browser's cookie. Ended rows are kept: ``ended_at`` says why not.
console_sessions = Table(
    "console_sessions",
    metadata,
    Column("id", Text(), primary_key=True),
    Column("token_id", Uuid(), ForeignKey("api_tokens.id"), nullable=False),
    Column("created_at", Timestamp, nullable=False),
    Column("last_seen_at", Timestamp, nullable=False),
    Column("expires_at", Timestamp, nullable=False),
    Column("ended_at", Timestamp, nullable=True),
    Index(None, "token_id"),
)

# Previewed changes bound to what their preview read (service/plans.py). No foreign keys: a
# plan, like the audit log, outlives the org or workspace it changed.
PLAN_STATES_SQL = "'proposed', 'approved', 'applied'"
change_plans = Table(
    "change_plans",
    metadata,
    Column("id", Uuid(), primary_key=True),
    Column("change", JSON(), nullable=False),
    Column("org_id", Uuid(), nullable=True),
    Column("workspace_id", Uuid(), nullable=True),
    Column("observed", JSON(), nullable=False),
    Column("summary", JSON(), nullable=False),
    Column("dangerous", Boolean(), nullable=False),
    Column("state", Text(), nullable=False),
    Column("proposed_by", Text(), nullable=False),
    Column("created_at", Timestamp, nullable=False),
    Column("expires_at", Timestamp, nullable=False),
    Column("approved_by", Text(), nullable=True),
    Column("approved_at", Timestamp, nullable=True),
    Column("applied_by", Text(), nullable=True),
    Column("applied_at", Timestamp, nullable=True),
    CheckConstraint(f"state IN ({PLAN_STATES_SQL})", name="state"),
    Index(None, "org_id"),
)

# What-if jobs (store/jobs.py): state, progress, who asked, the proposal and the report, so a
# job is seen from every replica and outlives the process that started it. No foreign key:
# like the audit log's record of the start, a job outlives what it covered.
WHATIF_JOB_STATES_SQL = "'queued', 'running', 'succeeded', 'failed'"
whatif_jobs = Table(
    "whatif_jobs",
    metadata,
    Column("id", Uuid(), primary_key=True),
    Column("org_id", Uuid(), nullable=True),
    Column("state", Text(), nullable=False),
    Column("done", BigInteger(), nullable=False),
    Column("total", BigInteger(), nullable=True),
    Column("created_at", Timestamp, nullable=False),
    Column("finished_at", Timestamp, nullable=True),
    Column("requested_by", Text(), nullable=False),
    Column("attempts", Integer(), nullable=False),
    Column("lease_owner", Text(), nullable=True),
    Column("lease_expires_at", Timestamp, nullable=True),
    Column("proposed_policy", JSON(), nullable=True),
    Column("proposed_registry", JSON(), nullable=True),
    Column("report", JSON(), nullable=True),
    Column("error_code", Text(), nullable=True),
    Column("error_message", Text(), nullable=True),
    CheckConstraint(f"state IN ({WHATIF_JOB_STATES_SQL})", name="state"),
    # An org's jobs in start order (quota, rate, keep); the queue in claim order.
    Index(None, "org_id", "created_at"),
    Index(None, "state", "created_at"),
)
