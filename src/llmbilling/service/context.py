"""What every use case works with: the store, the deployment's inputs, the registry, the keys."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from uuid import UUID

from llmbilling.config.policy import load_policy
from llmbilling.config.registry import load_registry
from llmbilling.config.settings import Settings
from llmbilling.core.policy import CONTRACT_POLICY, CompiledPolicy
from llmbilling.core.provisioning import ProxySettings
from llmbilling.core.registry import CompiledRegistry
from llmbilling.errors import InvalidInputError, RegistryError
from llmbilling.service.decision_cache import DecisionInputCache
from llmbilling.store import secrets as stored_secrets
from llmbilling.store.change_feed import ChangeFeed, take_announced
from llmbilling.store.crypto import KeyRing, SealedKeyCensus, key_ring_from_settings
from llmbilling.store.engine import Connection, PoolSettings, Store, open_store
from llmbilling.store.health import check_database
from llmbilling.store.loop_reader import LoopReader, LoopReaders
from llmbilling.store.migrate import ensure_schema

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class DeploymentInputs:
    """The deployment's share of every decision: its proxy and its fallback org default."""

    proxy: ProxySettings
    org_default: str | None
    proxy_configured: bool = field(init=False)

    def __post_init__(self) -> None:
        # Read on every decision; settled once here.
        object.__setattr__(self, "proxy_configured", self.proxy.configured)


@dataclass(frozen=True, slots=True)
class ChangeRules:
    """How the deployment guards changes (service/plans.py): refuse unacknowledged dangerous
    writes, require a second token's approval of dangerous plans, and how long a plan lives."""

    guard_dangerous_writes: bool = False
    dangerous_plans_need_approval: bool = False
    plan_ttl_seconds: int = 15 * 60

    @classmethod
    def from_settings(cls, settings: Settings) -> ChangeRules:
        return cls(
            guard_dangerous_writes=settings.guard_dangerous_writes,
            dangerous_plans_need_approval=settings.dangerous_plans_need_approval,
            plan_ttl_seconds=settings.plan_ttl_seconds,
        )


class ServiceContext:
    """The store and everything read once per process. Create with :meth:`from_settings`.

    Coroutines read through :meth:`loop_reader` (one reader per event loop, no thread
    hand-off); a server closes its loop's reader with :meth:`close_loop_reader` at shutdown.
    ``change_feed`` tells this process of every committed write (its own at once, after the
    commit of :func:`writing`); a server starts it, and :meth:`close` closes it. While it is
    connected, ``decision_cache`` holds the decision GET's and the token check's
    inputs in memory.

    The key ring is loaded on first use, so commands that never touch a secret value work
    without one. A registry that fails to load is remembered: decisions then say
    ``registry_unavailable`` (fail closed), and provisioning raises the load error. A policy
    file that fails to load is a configuration error raised at creation.
    """

    def __init__(
        self,
        store: Store,
        deployment: DeploymentInputs,
        registry: CompiledRegistry | None,
        *,
        key_ring_loader: Callable[[], KeyRing],
        registry_error: RegistryError | None = None,
        policy: CompiledPolicy = CONTRACT_POLICY,
        change_rules: ChangeRules | None = None,
    ) -> None:
        self.store = store
        self.change_rules = change_rules or ChangeRules()
        self.policy = policy
        self.deployment = deployment
        self.registry = registry
        self.registry_error = registry_error
        self._key_ring_loader = key_ring_loader
        self._key_ring: KeyRing | None = None
        self._loop_readers = LoopReaders(store)
        self.change_feed = ChangeFeed(store)
        self.decision_cache = DecisionInputCache(self.change_feed)

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        pool_pre_ping: bool = True,
        check_schema: bool = True,
        create_database: bool = True,
    ) -> ServiceContext:
        """The context of ``settings``. Without ``create_database`` a SQLite file that does
        not exist raises :class:`~llmbilling.errors.DatabaseNotFoundError` (the CLI's
        commands but ``db upgrade`` and ``serve --demo``)."""
        policy = load_policy(settings.policy_path)
        pool = PoolSettings(
            size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
            idle_seconds=settings.db_pool_idle_seconds,
        )
        store = open_store(
            settings.database_url, pool=pool, pool_pre_ping=pool_pre_ping, create=create_database
        )
        if check_schema:
            try:
                ensure_schema(store, auto_migrate=settings.should_auto_migrate)
            except BaseException:
                store.close()
                raise
        registry: CompiledRegistry | None
        registry_error: RegistryError | None = None
        try:
            registry = load_registry(settings.registry_path)
        except RegistryError as error:
            log.error("provider registry unavailable: %s", error.message)
            registry, registry_error = None, error
        deployment = DeploymentInputs(
            proxy=ProxySettings.from_env(settings.proxy_env()),
            org_default=settings.deployment_billing_mode,
        )
        context = cls(
            store,
            deployment,
            registry,
            key_ring_loader=lambda: key_ring_from_settings(settings, lambda: key_census(store)),
            registry_error=registry_error,
            policy=policy,
            change_rules=ChangeRules.from_settings(settings),
        )
        if check_schema:
            try:
                context.check_key_ring()
            except BaseException:
                store.close()
                raise
        return context

    def check_key_ring(self) -> None:
        """Load the key ring now if any secret is stored, so a ring that matches none of
        them (``KeyRingMismatchError``) refuses the start; else leave it to its first use."""
        if key_census(self.store).rows:
            _ = self.key_ring

    @property
    def key_ring(self) -> KeyRing:
        """The secret key ring; raises ``KeyRingError`` when none is configured."""
        if self._key_ring is None:
            self._key_ring = self._key_ring_loader()
        return self._key_ring

    def require_registry(self) -> CompiledRegistry:
        if self.registry is None:
            assert self.registry_error is not None
            raise self.registry_error
        return self.registry

    def loop_reader(self) -> LoopReader:
        """The store reader of the calling coroutine's event loop."""
        return self._loop_readers.current()

    async def close_loop_reader(self) -> None:
        """Release the calling event loop's reader (a server's shutdown, on its loop)."""
        await self._loop_readers.close()

    def check_store(self) -> None:
        """Return when the database answers; :class:`StoreUnavailableError` otherwise."""
        check_database(self.store)

    def close(self) -> None:
        self.change_feed.close()
        self.store.close()

    def __enter__(self) -> ServiceContext:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()


def key_census(store: Store) -> SealedKeyCensus:
    """What the stored secrets record about the keys that sealed them."""
    with store.connection() as connection:
        return stored_secrets.key_census(connection)


def parse_id(field: str, text: str | UUID) -> UUID:
    """A UUID given by a caller; :class:`InvalidInputError` naming ``field`` otherwise."""
    if isinstance(text, UUID):
        return text
    try:
        return UUID(text.strip())
    except ValueError:
        raise InvalidInputError(field, f"{text!r} is not a UUID") from None


_ENV_NAME = re.compile(r"^[A-Z_][A-Z0-9_]*$")


def check_env_name(field: str, name: str) -> str:
    if not _ENV_NAME.match(name):
        raise InvalidInputError(field, f"{name!r} is not an env var name ([A-Z_][A-Z0-9_]*)")
    return name


@contextmanager
def writing(context: ServiceContext) -> Iterator[Connection]:
    """One write transaction (:meth:`Store.transaction`). Database failures become
    :class:`StoreUnavailableError`; integrity errors (a duplicate id) propagate for the use
    case to name. The changes its writes announced reach this process's change feed once it
    has committed; a rolled-back one's are dropped."""
    opened: Connection | None = None
    try:
        with context.store.transaction() as opened:
            yield opened
    except BaseException:
        if opened is not None:
            take_announced(opened)  # rolled back: nothing happened
        raise
    context.change_feed.deliver_committed(opened)


@contextmanager
def reading(context: ServiceContext) -> Iterator[Connection]:
    """One autocommit read connection (:meth:`Store.connection`); failures become
    :class:`StoreUnavailableError`."""
    with context.store.connection() as connection:
        yield connection


@contextmanager
def translated_store_errors(context: ServiceContext) -> Iterator[None]:
    """Database failures inside become :class:`StoreUnavailableError` (sanitized message)."""
    with context.store.translated_errors():
        yield
