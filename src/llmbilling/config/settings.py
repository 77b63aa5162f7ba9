"""Deployment settings: environment variables, a ``.env`` file, and CLI flags (as init kwargs).

Precedence, highest first: values passed to :class:`Settings` (the CLI's flags), environment
variables, the ``.env`` file in the working directory, the defaults below.

llmbilling's own settings use the ``LLMBILLING_`` prefix. The deployment's billing inputs are
read by the exact names the rest of the platform already uses (``MOLECULE_LLM_BILLING_MODE``,
the proxy variables of spec §4), never from a tenant's secrets.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy.engine import make_url

DEFAULT_DATABASE_URL = "sqlite:///./llmbilling.sqlite3"

# The deployment env names ProxySettings.from_env understands (spec §4), mapped to our fields.
PROXY_ENV_FIELDS: Mapping[str, str] = {
    "MOLECULE_LLM_BASE_URL": "molecule_llm_base_url",
    "MOLECULE_LLM_USAGE_TOKEN": "molecule_llm_usage_token",
    "MOLECULE_LLM_ANTHROPIC_BASE_URL": "molecule_llm_anthropic_base_url",
    "MOLECULE_LLM_USAGE_URL": "molecule_llm_usage_url",
    "OPENAI_BASE_URL": "openai_base_url",
    "OPENAI_API_KEY": "openai_api_key",
    "ANTHROPIC_BASE_URL": "anthropic_base_url",
}


class Settings(BaseSettings):
    """Everything a deployment configures. Immutable once read.

    ``secret_keys`` is the key ring ``"v1:<base64 of 32 bytes>,v2:..."``; the highest version
    encrypts, every listed version decrypts. When it is unset and the database is SQLite, a
    development key ring is generated next to the database file (see ``store.crypto``).
    """

    model_config = SettingsConfigDict(
        env_prefix="LLMBILLING_",
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        frozen=True,
        populate_by_name=True,
    )

    database_url: str = Field(
        default=DEFAULT_DATABASE_URL,
        description="SQLAlchemy URL: sqlite:///path (embedded default) or postgresql://...",
    )
    secret_keys: SecretStr | None = Field(
        default=None, description="Key ring for secrets at rest: v1:<base64>,v2:<base64>"
    )
    registry_path: Path | None = Field(
        default=None, description="Provider registry YAML; the built-in one when unset"
    )
    policy_path: Path | None = Field(
        default=None, description="Precedence policy YAML; the contract's policy when unset"
    )
    auto_migrate: bool | None = Field(
        default=None,
        description="Upgrade the schema on first use; default: yes for SQLite, no for PostgreSQL",
    )
    # Three pools a process (writes, reads, the event-loop reader), each at most size +
    # overflow: the defaults hold 30, so three processes fit PostgreSQL's default 100.
    db_pool_size: int = Field(
        default=10, ge=1, le=1000, description="Connections each of the 3 pools keeps"
    )
    db_max_overflow: int = Field(
        default=0,
        ge=0,
        le=1000,
        description="Extra connections each pool may open under load (closed when given back)",
    )
    db_pool_idle_seconds: float = Field(
        default=300.0,
        ge=0,
        le=86400,
        description="PostgreSQL closes a pooled connection idle this long (0: never)",
    )
    console_session_idle_seconds: int = Field(
        default=30 * 60, gt=0, description="A console session ends after this long unused"
    )
    console_session_max_seconds: int = Field(
        default=12 * 60 * 60, gt=0, description="A console session ends this long after login"
    )
    console_login_failures: int = Field(
        default=5, gt=0, description="Failed console logins a client may make per window"
    )
    console_login_window_seconds: int = Field(
        default=5 * 60, gt=0, description="The window of console_login_failures, in seconds"
    )
    max_request_head_bytes: int = Field(
        default=32 * 1024,
        ge=4096,
        description="A request line and headers over this many bytes is refused (431)",
    )
    max_request_headers: int = Field(
        default=100, ge=16, description="A request with more header fields is refused (431)"
    )
    whatif_keep_per_org: int = Field(
        default=20, ge=1, description="Finished what-if jobs kept in the store per org"
    )
    whatif_active_per_org: int = Field(
        default=2, ge=1, description="What-if jobs an org may have queued or running at once"
    )
    whatif_starts_per_minute: float = Field(
        default=10.0, gt=0, description="What-if jobs an org may start a minute, sustained"
    )
    whatif_start_burst: int = Field(
        default=5, ge=1, description="What-if jobs an org may start at once after a pause"
    )
    guard_dangerous_writes: bool = Field(
        default=False,
        description="Refuse (409) a write that would create danger-class workspaces unless "
        "the request acknowledges each class by name",
    )
    dangerous_plans_need_approval: bool = Field(
        default=False,
        description="A plan with danger classes is applied only after a second token "
        "approves it; a dangerous direct write must then go through a plan",
    )
    plan_ttl_seconds: int = Field(
        default=15 * 60, ge=1, le=7 * 86400, description="A change plan expires this long after"
    )
    whatif_lease_seconds: float = Field(
        default=30.0,
        gt=0,
        description="A running what-if job whose worker has not renewed its lease for this"
        " long is run again by another worker (or fails, on its last attempt)",
    )
    whatif_poll_seconds: float = Field(
        default=1.0, gt=0, description="How often an idle what-if worker looks for queued jobs"
    )
    whatif_attempts: int = Field(
        default=2, ge=1, description="Runs a what-if job gets before a lost worker fails it"
    )

    deployment_billing_mode: str | None = Field(
        default=None,
        validation_alias="MOLECULE_LLM_BILLING_MODE",
        description="Org default for orgs that store none (single-tenant deployments)",
    )

    molecule_llm_base_url: str | None = Field(
        default=None, validation_alias="MOLECULE_LLM_BASE_URL"
    )
    molecule_llm_usage_token: SecretStr | None = Field(
        default=None, validation_alias="MOLECULE_LLM_USAGE_TOKEN"
    )
    molecule_llm_anthropic_base_url: str | None = Field(
        default=None, validation_alias="MOLECULE_LLM_ANTHROPIC_BASE_URL"
    )
    molecule_llm_usage_url: str | None = Field(
        default=None, validation_alias="MOLECULE_LLM_USAGE_URL"
    )
    openai_base_url: str | None = Field(default=None, validation_alias="OPENAI_BASE_URL")
    openai_api_key: SecretStr | None = Field(default=None, validation_alias="OPENAI_API_KEY")
    anthropic_base_url: str | None = Field(default=None, validation_alias="ANTHROPIC_BASE_URL")

    @property
    def is_sqlite(self) -> bool:
        return make_url(self.database_url).get_backend_name() == "sqlite"

    @property
    def should_auto_migrate(self) -> bool:
        return self.is_sqlite if self.auto_migrate is None else self.auto_migrate

    def proxy_env(self) -> dict[str, str]:
        """The deployment's proxy variables that are set, by their env names (values included:
        pass them only to ``ProxySettings.from_env``, never to a log)."""
        found: dict[str, str] = {}
        for env_name, field_name in PROXY_ENV_FIELDS.items():
            value = getattr(self, field_name)
            if isinstance(value, SecretStr):
                value = value.get_secret_value()
            if value:
                found[env_name] = value
        return found
