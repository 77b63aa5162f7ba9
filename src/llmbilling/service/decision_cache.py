"""The decision GET's inputs held in memory, kept current by the change feed.

The API's hot path reads two rows a request: the bearer token's and the workspace's state.
This cache keeps both (the :class:`WorkspaceState` a decision is computed from, never the
decision: an override's expiry is judged against the clock at every read, as without it) and
drops them on the feed's events for their scope. It never changes an answer:

- it is consulted only while the feed :attr:`~ChangeFeed.connected` (on PostgreSQL, while
  the listener is down, the store is read);
- on :class:`FeedLost` and :class:`FeedRestored` everything is dropped, and so it is
  whenever the reading connection may hold commits the feed did not tell of
  (:meth:`catch_up`, before every read from memory): on SQLite, whose feed hears only this
  process, any other connection's commit (``PRAGMA data_version``), so a CLI writing beside
  ``serve`` is seen by the very next read;
- a read that began before an event is not kept after it: every event moves a generation
  counter, a read takes a :class:`Ticket` before it starts, and its result is kept only if no
  event came in between (else a state read just before a commit could outlive the commit's
  invalidation);
- nothing absent is kept (an unknown token, a missing workspace), so a new row needs no event
  to be seen, and no caller can fill memory with misses;
- an entry is used for at most ``max_age_seconds`` after its read: a row written past the
  store's functions (another tool's SQL, which announces nothing) is seen within that time.

A token is kept by its hash, active or revoked; any token event drops every token (tokens are
few and change seldom). Revocation takes effect on the revoking process before the revoke
returns (its own commit is delivered on the committing thread), and on every other one when
PostgreSQL's notification reaches it, typically within milliseconds of the commit (see
docs/DECISIONS.md "Decision inputs in memory").
"""

from __future__ import annotations

import threading
import time
from collections.abc import Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeAlias, TypeVar
from uuid import UUID

from llmbilling.store.change_feed import ChangeFeed, ChangeKind, FeedEvent, StoreChange
from llmbilling.store.loop_reader import LoopReader
from llmbilling.store.workspace_read import WorkspaceState

if TYPE_CHECKING:  # service.tokens builds on the context, which holds this cache
    from llmbilling.service.tokens import ActiveToken, RevokedToken

    KnownToken: TypeAlias = ActiveToken | RevokedToken

DEFAULT_STATE_CAPACITY = 50_000
DEFAULT_TOKEN_CAPACITY = 10_000
DEFAULT_MAX_AGE_SECONDS = 300.0

Key = TypeVar("Key", bound=Hashable)
Value = TypeVar("Value")


@dataclass(frozen=True, slots=True)
class Ticket:
    """Taken before a store read: its result may be kept only if no event came since."""

    generation: int
    taken_at: float


class _Bounded(Generic[Key, Value]):
    """A dict of values with the (monotonic) time each was read, forgetting its oldest entry
    beyond ``capacity``; writers hold the cache's lock, readers need not."""

    def __init__(self, capacity: int, max_age_seconds: float) -> None:
        self.capacity = capacity
        self.max_age_seconds = max_age_seconds
        self.entries: dict[Key, tuple[Value, float]] = {}

    def get(self, key: Key) -> Value | None:
        entry = self.entries.get(key)
        if entry is None or time.monotonic() - entry[1] >= self.max_age_seconds:
            return None
        return entry[0]

    def put(self, key: Key, value: Value, read_at: float) -> Value | None:
        """Keep ``value``; the value forgotten to make room, if any."""
        self.entries.pop(key, None)
        self.entries[key] = (value, read_at)
        if len(self.entries) > self.capacity:
            return self.entries.pop(next(iter(self.entries)))[0]
        return None

    def pop(self, key: Key) -> Value | None:
        entry = self.entries.pop(key, None)
        return None if entry is None else entry[0]


class DecisionInputCache:
    """Workspace states and token standings for the decision GET and the token check.

    Reads from memory are sound only after :meth:`catch_up` on the reading loop's reader.
    Thread-safe: events arrive on the feed's threads, reads on event loops.
    """

    def __init__(
        self,
        feed: ChangeFeed,
        *,
        enabled: bool = True,
        state_capacity: int = DEFAULT_STATE_CAPACITY,
        token_capacity: int = DEFAULT_TOKEN_CAPACITY,
        max_age_seconds: float = DEFAULT_MAX_AGE_SECONDS,
    ) -> None:
        self._feed = feed
        self._enabled = enabled
        self._lock = threading.Lock()
        self._generation = 0
        self._states: _Bounded[UUID, WorkspaceState] = _Bounded(state_capacity, max_age_seconds)
        self._workspaces_of_org: dict[UUID, set[UUID]] = {}
        self._tokens: _Bounded[str, KnownToken] = _Bounded(token_capacity, max_age_seconds)
        if self._enabled:
            feed.subscribe(self._on_event)

    @property
    def serving(self) -> bool:
        """Whether reads may be answered from memory now."""
        return self._enabled and self._feed.connected

    def catch_up(self, reader: LoopReader) -> None:
        """Drop everything if ``reader``'s database may hold commits the feed did not tell of
        (SQLite: another connection's); call it on the reading loop before :meth:`state` or
        :meth:`token`. Costs one ``PRAGMA`` on SQLite, nothing on PostgreSQL."""
        if self.serving and reader.commits_unseen_by_feed():
            with self._lock:
                self._generation += 1
                self._drop_everything()

    def ticket(self) -> Ticket | None:
        """A ticket for a store read about to start; None while the cache is not serving."""
        if not self.serving:
            return None
        # The age of what the read returns counts from before it started.
        return Ticket(self._generation, time.monotonic())

    def state(self, workspace_id: UUID) -> WorkspaceState | None:
        """The kept state of the workspace, or None (read the store)."""
        if not self.serving:
            return None
        return self._states.get(workspace_id)

    def keep_state(self, ticket: Ticket | None, state: WorkspaceState) -> None:
        """Keep a state the store returned after ``ticket`` was taken."""
        if ticket is None:
            return
        with self._lock:
            if ticket.generation != self._generation or not self.serving:
                return
            evicted = self._states.put(state.workspace_id, state, ticket.taken_at)
            if evicted is not None:
                self._unindex(evicted)
            self._workspaces_of_org.setdefault(state.org_id, set()).add(state.workspace_id)

    def token(self, token_hash: str) -> KnownToken | None:
        """The kept standing of the token with this hash, or None (read the store)."""
        if not self.serving:
            return None
        return self._tokens.get(token_hash)

    def keep_token(self, ticket: Ticket | None, token_hash: str, standing: KnownToken) -> None:
        """Keep a token standing the store returned after ``ticket`` was taken."""
        if ticket is None:
            return
        with self._lock:
            if ticket.generation == self._generation and self.serving:
                self._tokens.put(token_hash, standing, ticket.taken_at)

    def _on_event(self, event: FeedEvent) -> None:
        with self._lock:
            self._generation += 1
            if not isinstance(event, StoreChange):
                self._drop_everything()
            elif event.kind is ChangeKind.TOKEN:
                self._tokens.entries.clear()
            elif event.workspace_id is not None:
                self._drop_workspace(event.workspace_id)
            elif event.org_id is not None:
                for workspace_id in self._workspaces_of_org.pop(event.org_id, set()):
                    self._states.pop(workspace_id)
            else:
                self._drop_everything()

    def _drop_everything(self) -> None:
        self._states.entries.clear()
        self._workspaces_of_org.clear()
        self._tokens.entries.clear()

    def _drop_workspace(self, workspace_id: UUID) -> None:
        dropped = self._states.pop(workspace_id)
        if dropped is not None:
            self._unindex(dropped)

    def _unindex(self, state: WorkspaceState) -> None:
        members = self._workspaces_of_org.get(state.org_id)
        if members is not None:
            members.discard(state.workspace_id)
            if not members:
                del self._workspaces_of_org[state.org_id]
