"""The change feed: every committed write of a decision input, told to every process.

The store's write functions call :func:`announce` inside their transaction, one line each, so
every write path announces (the store is the one door). A change is delivered after its commit,
and a rolled-back transaction delivers nothing:

- to the committing process's own :class:`ChangeFeed` at once, on the committing thread, when
  the service's ``writing`` block ends (:meth:`ChangeFeed.deliver_committed`), so a revocation
  takes effect on the replica that made it before the write returns;
- on PostgreSQL, to every other process through ``pg_notify`` sent in the transaction (so
  PostgreSQL itself drops it on rollback) and a listener thread holding ``LISTEN`` on its own
  connection. A notification carries its origin (process and engine), so the process that
  committed it, having delivered it already, skips it.

SQLite has no channel between processes: its feed delivers in-process only
(:attr:`ChangeFeed.spans_processes` is False). What it cannot hear, a reader detects: SQLite's
``PRAGMA data_version`` moves whenever another connection commits
(:meth:`~llmbilling.store.loop_reader.LoopReader.commits_unseen_by_feed`), which is how the
decision cache stays sound beside a CLI writing to the same file.

While the PostgreSQL listener is down, :attr:`ChangeFeed.connected` is False and subscribers
get :class:`FeedLost`; changes committed then are not redelivered: after the listener is back
(``LISTEN`` re-issued) they get :class:`FeedRestored` and must treat everything as changed.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeAlias
from uuid import UUID
from weakref import WeakKeyDictionary

import psycopg
from sqlalchemy import Connection, Engine, text

from llmbilling.store.engine import Store

log = logging.getLogger(__name__)

CHANNEL = "llmbilling_changes"
_NOTIFY = text("SELECT pg_notify(:channel, :payload)")
_NO_ID = "-"
# The listener wakes this often to notice close() and to prove its connection alive.
_POLL_SECONDS = 0.5
_PING_EVERY_POLLS = 4


class ChangeKind(StrEnum):
    """Which decision input a write changed."""

    OVERRIDE = "override"
    ORG_DEFAULT = "org_default"  # an org's default written, or an org created
    SECRET = "secret"
    WORKSPACE = "workspace"  # created, its model or runtime written
    TOKEN = "token"  # created or revoked
    PLAN = "plan"


@dataclass(frozen=True, slots=True)
class StoreChange:
    """One committed change and its scope: ``workspace_id`` None means the whole org,
    ``org_id`` None the whole fleet."""

    kind: ChangeKind
    org_id: UUID | None
    workspace_id: UUID | None


@dataclass(frozen=True, slots=True)
class FeedLost:
    """The listener lost its database connection: changes may go unannounced until
    :class:`FeedRestored`."""


@dataclass(frozen=True, slots=True)
class FeedRestored:
    """The listener is back: anything may have changed while it was away."""


FeedEvent: TypeAlias = StoreChange | FeedLost | FeedRestored
Subscriber: TypeAlias = Callable[[FeedEvent], None]

_PROCESS_NONCE = secrets.token_hex(6)
# Changes announced in a transaction not yet ended, by its connection (a connection object is
# one checkout: it dies with it, so nothing outlives a transaction that never reported back).
_announced: WeakKeyDictionary[Connection, list[StoreChange]] = WeakKeyDictionary()
_announced_lock = threading.Lock()


def origin_of(engine: Engine) -> str:
    """Who announced: this process and its write engine (one per :class:`Store`)."""
    return f"{_PROCESS_NONCE}.{id(engine):x}"


def announce(connection: Connection, change: StoreChange) -> None:
    """Tell every subscriber of every process about ``change`` once the caller's transaction
    commits (nothing when it rolls back). Call it inside the write transaction."""
    if connection.dialect.name == "postgresql":
        payload = encode_change(change, origin_of(connection.engine))
        connection.execute(_NOTIFY, {"channel": CHANNEL, "payload": payload})
    with _announced_lock:
        _announced.setdefault(connection, []).append(change)


def take_announced(connection: Connection) -> list[StoreChange]:
    """The changes announced on ``connection`` since the last take, forgotten here."""
    with _announced_lock:
        return _announced.pop(connection, [])


def encode_change(change: StoreChange, origin: str) -> str:
    """The notification payload: origin, kind and the two ids (``-`` for none)."""
    org = _NO_ID if change.org_id is None else change.org_id.hex
    workspace = _NO_ID if change.workspace_id is None else change.workspace_id.hex
    return f"{origin} {change.kind.value} {org} {workspace}"


def decode_change(payload: str) -> tuple[str, StoreChange]:
    """(origin, change) of a payload of :func:`encode_change`; ValueError for anything else."""
    origin, kind, org, workspace = payload.split(" ")
    return origin, StoreChange(
        ChangeKind(kind),
        None if org == _NO_ID else UUID(org),
        None if workspace == _NO_ID else UUID(workspace),
    )


class ChangeFeed:
    """Delivers the changes of one store's database to this process's subscribers.

    Callbacks run on the listener thread or on a committing thread: they must be quick and
    never block (hand work to an event loop with ``loop.call_soon_threadsafe``). A callback
    that raises is logged and the others still run.
    """

    def __init__(self, store: Store, *, reconnect_seconds: float = 0.5) -> None:
        self._store = store
        self._origin = origin_of(store.engine)
        self._reconnect_seconds = reconnect_seconds
        self._subscribers: tuple[Subscriber, ...] = ()
        self._subscribers_lock = threading.Lock()
        self._connected = False
        self._started = False
        self._start_lock = threading.Lock()  # servers on several loops may start it at once
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def spans_processes(self) -> bool:
        """Whether other processes' commits reach this feed (PostgreSQL) or only this
        process's own (SQLite)."""
        return self._store.dialect == "postgresql"

    @property
    def connected(self) -> bool:
        """True while every commit is being delivered: started, and on PostgreSQL while the
        listener holds its connection."""
        return self._connected

    def subscribe(self, callback: Subscriber) -> Callable[[], None]:
        """Call ``callback`` with every event from now on; returns the unsubscribe."""
        with self._subscribers_lock:
            self._subscribers = (*self._subscribers, callback)

        def unsubscribe() -> None:
            with self._subscribers_lock:
                self._subscribers = tuple(s for s in self._subscribers if s is not callback)

        return unsubscribe

    def start(self) -> None:
        """Begin delivering (PostgreSQL: start the listener thread; :attr:`connected` turns
        True once it listens). Starting a started feed does nothing."""
        with self._start_lock:
            if self._started:
                return
            self._started = True
            self._stop.clear()
            if not self.spans_processes:
                self._connected = True
                return
            self._thread = threading.Thread(target=self._listen, name="llmbilling-change-feed")
            self._thread.daemon = True
            self._thread.start()

    def close(self) -> None:
        """Stop delivering and release the listener's connection."""
        with self._start_lock:
            self._stop.set()
            thread, self._thread = self._thread, None
            if thread is not None:
                thread.join()
            self._connected = False
            self._started = False

    def deliver_committed(self, connection: Connection) -> None:
        """Deliver what was announced in ``connection``'s transaction, just committed."""
        for change in take_announced(connection):
            self._publish(change)

    def _publish(self, event: FeedEvent) -> None:
        for callback in self._subscribers:
            try:
                callback(event)
            except Exception:
                log.exception("a change feed subscriber failed on %r", event)

    def _listen(self) -> None:
        while not self._stop.is_set():
            try:
                with self._open_listener() as connection:
                    self._listening(connection)
            except psycopg.Error as error:
                if self._connected:  # once per loss, not at every failed reconnect
                    log.warning("change feed listener lost: %s", type(error).__name__)
            if self._connected:
                self._connected = False
                self._publish(FeedLost())
            self._stop.wait(self._reconnect_seconds)

    def _open_listener(self) -> psycopg.Connection[tuple[object, ...]]:
        url = self._store.url.set(drivername="postgresql")
        application_name = f"{self._store.pool.application_name}:feed"
        return psycopg.connect(
            url.render_as_string(hide_password=False),
            autocommit=True,
            connect_timeout=5,
            application_name=application_name,
            keepalives=1,
            keepalives_idle=5,
            keepalives_interval=2,
            keepalives_count=2,
        )

    def _listening(self, connection: psycopg.Connection[tuple[object, ...]]) -> None:
        connection.execute(f"LISTEN {CHANNEL}")
        if not self._connected:
            # Anything may have changed before LISTEN took hold (at start nobody holds
            # anything yet, so the restore costs nothing). Told before ``connected`` turns
            # True: whoever sees it True has been told.
            self._publish(FeedRestored())
            self._connected = True
        polls = 0
        while not self._stop.is_set():
            for notification in connection.notifies(timeout=_POLL_SECONDS):
                self._received(notification.payload)
            polls += 1
            if polls % _PING_EVERY_POLLS == 0:
                connection.execute("SELECT 1")

    def _received(self, payload: str) -> None:
        try:
            origin, change = decode_change(payload)
        except ValueError:
            log.warning("change feed: ignored a malformed notification")
            return
        if origin != self._origin:
            self._publish(change)
