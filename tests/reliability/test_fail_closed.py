"""Fail closed at scale: every spec §2 invariant over the whole decision input space, and the
read path and the what-if under real store faults at every read.

Two properties:

- **Pure.** Hypothesis draws every decision input — garbled, Unicode, white-space-padded and
  homoglyph override and org-default text, registry runtimes and model ids mixed with random
  text, random secret-name sets, proxy yes/no, the registry (built-in or unavailable) and the
  policy (the contract's or any other valid one) — and checks every §2 invariant on the
  decision, including that nothing inside it does I/O (a ``sys.addaudithook`` watch).
- **Faults.** Real stores (a SQLite file and a PostgreSQL database) hold a drawn workspace;
  the read then fails at a drawn point — the database path is a directory, the file is not a
  database, a table is gone, the port is closed, the database does not exist, the pooled
  connection was killed with ``pg_terminate_backend``, the sealed model secret's ciphertext
  was corrupted or names an unknown key version — and ``resolve_workspace`` must still answer
  the ``constant_fallback`` decision with the error beside it, never raise, never ``byok`` on
  SaaS; the fleet what-if must either count the row as that same fallback (row faults) or
  fail with a typed ``STORE_UNAVAILABLE`` (store faults), never report a fleet it did not
  read. Without a fault the stored decision equals the pure core's on the drawn inputs.

Beside them, named tests: every fault alone on a state that would otherwise decide byok on
SaaS; a failed read under every valid policy; a what-if that loses the store between two pages;
the read path and provisioning agreeing on a model column of white space (found by the long
run: SQL's trim and Python's strip disagreed).

Bounded in CI (``PURE_EXAMPLES``, ``FAULT_EXAMPLES`` per engine). The long run:

    LLMBILLING_LONG_RUN=1 .venv/bin/pytest -s -p no:xdist tests/reliability/test_fail_closed.py

runs 100,000 pure examples and 2,000 fault examples per engine, and prints the example counts
and times.
"""

from __future__ import annotations

import base64
import os
import shutil
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, text, update
from sqlalchemy.engine import make_url
from tests.store.db_fixtures import (
    KEY_RING_TEXT,
    POSTGRES_ADMIN_URL,
    terminate_other_connections,
)

import llmbilling
from llmbilling.core.decision import BillingDecision, OverrideReadFailure, ResolutionInput
from llmbilling.core.modes import MODE_VALUES, RungName
from llmbilling.core.policy import CONTRACT_POLICY, CompiledPolicy, compile_policy
from llmbilling.core.provisioning import ProxySettings
from llmbilling.core.registry import CompiledRegistry
from llmbilling.core.resolve import resolve_billing_mode
from llmbilling.core.whatif import Configuration
from llmbilling.registry_files import built_in_registry, load_registry
from llmbilling.service import admin, secrets
from llmbilling.service.context import DeploymentInputs, ServiceContext
from llmbilling.service.provision import provision_workspace
from llmbilling.service.resolve import resolve_workspace
from llmbilling.service.whatif import run_whatif
from llmbilling.store import migrate
from llmbilling.store.crypto import KeyRing, SecretScopeName
from llmbilling.store.engine import Store, open_store
from llmbilling.store.errors import StoreUnavailableError
from llmbilling.store.tables import organizations, workspace_secrets, workspaces
from llmbilling.store.workspace_read import PYTHON_WHITE_SPACE

LONG_RUN = os.environ.get("LLMBILLING_LONG_RUN") == "1"
PURE_EXAMPLES = 100_000 if LONG_RUN else 400
FAULT_EXAMPLES = 2_000 if LONG_RUN else 100

BUILT_IN = built_in_registry()
# The same file compiled again: a distinct object, so no memo can make two calls agree.
BUILT_IN_TWIN = load_registry(Path(llmbilling.__file__).parent / "data" / "registry.yaml")
PLATFORM = BUILT_IN.platform_provider

SOURCES = {
    "workspace_override",
    "org_default",
    "derived_provider",
    "derived_default",
    "constant_fallback",
}
FAIL_CLOSED_SOURCES = {"derived_default", "constant_fallback"}
DECIDING_RUNG = {
    "workspace_override": "workspace_override",
    "org_default": "org_default",
    "derived_provider": "derived_provider",
    "derived_default": "deployment_default",
    "constant_fallback": "deployment_default",
}


def report(line: str) -> None:
    """A measured figure, shown with ``pytest -s``."""
    print(f"\n[reliability] {line}")


# --- every valid policy ------------------------------------------------------------------------


def _all_valid_policies() -> list[tuple[dict[str, Any], CompiledPolicy, CompiledPolicy]]:
    """(document, compiled, compiled again) for every valid chain: any order of any subset of
    the three deciding rungs, then the deployment default; with and without the option."""
    first_three = [
        RungName.WORKSPACE_OVERRIDE.value,
        RungName.ORG_DEFAULT.value,
        RungName.DERIVED_PROVIDER.value,
    ]
    chains: list[list[str]] = [[]]
    for _ in first_three:
        chains += [[*chain, rung] for chain in chains for rung in first_three if rung not in chain]
    unique = {tuple(chain) for chain in chains}
    found = []
    for chain in sorted(unique):
        rungs = [*chain, RungName.DEPLOYMENT_DEFAULT.value]
        options = [False]
        if {"org_default", "derived_provider"} <= set(chain) and chain.index(
            "org_default"
        ) < chain.index("derived_provider"):
            options.append(True)
        for own_key in options:
            document = {
                "schema_version": 1,
                "rungs": rungs,
                "options": {"own_key_wins_over_org_default": own_key},
            }
            found.append(
                (
                    document,
                    compile_policy(document, "<drawn policy>"),
                    compile_policy(document, "<drawn policy, again>"),
                )
            )
    return found


ALL_POLICIES = _all_valid_policies()
CONTRACT = (CONTRACT_POLICY.to_document(), CONTRACT_POLICY, CONTRACT_POLICY)
# Half the draws use the contract's policy, the rest any valid one.
policies = st.one_of(st.just(CONTRACT), st.sampled_from(ALL_POLICIES))

# --- text strategies -----------------------------------------------------------------------------

# White space as str.strip() sees it (ASCII, separators, Unicode spaces) ...
WHITE_SPACE = (
    " \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f\x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006"
    "\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
# ... and characters that look blank but are not white space: they must survive trimming.
LOOKS_BLANK = "\u200b\u200c\u200d\u2060\ufeff\u00ad\x00\u034f"
noise = st.text(alphabet=st.sampled_from(WHITE_SPACE + LOOKS_BLANK), max_size=3)

# Lookalikes of the letters of the modes. Some lowercase onto ASCII (KELVIN SIGN → "k"), most
# do not; the spec's normalization (trim, lowercase) decides, and the test computes it itself.
HOMOGLYPHS = {
    "a": "\u0430\u03b1A",
    "b": "\u0432\u13cfB",
    "d": "\u0501D",
    "e": "\u0435\u03b5E",
    "g": "\u0261G",
    "i": "\u0456\u0131\u0130I1",
    "k": "\u212a\u03baK",
    "l": "\u04cf1L",
    "m": "\u043cM",
    "n": "\u043fN",
    "o": "\u043e\u03bf0O",
    "p": "\u0440\u03c1P",
    "r": "\u0433R",
    "s": "\u0455S",
    "t": "\u0442T",
    "y": "\u0443Y",
    "_": "-\u2010 .",
}


@st.composite
def cased(draw: st.DrawFn, word: str) -> str:
    flips = draw(st.lists(st.booleans(), min_size=len(word), max_size=len(word)))
    return "".join(c.upper() if flip else c for c, flip in zip(word, flips, strict=True))


@st.composite
def homoglyphed(draw: st.DrawFn, word: str) -> str:
    at = draw(st.integers(min_value=0, max_value=len(word) - 1))
    lookalikes = HOMOGLYPHS.get(word[at].lower(), "")
    if not lookalikes:
        return word
    return word[:at] + draw(st.sampled_from(lookalikes)) + word[at + 1 :]


@st.composite
def garbled(draw: st.DrawFn, word: str) -> str:
    at = draw(st.integers(min_value=0, max_value=len(word)))
    junk = draw(st.text(max_size=2) | st.sampled_from(["\x00", "\u0301", "\ufffd", "%00", "'"]))
    cut = draw(st.integers(min_value=0, max_value=2))
    return word[:at] + junk + word[at + cut :]


def padded(words: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.builds(lambda pre, word, post: pre + word + post, noise, words, noise)


mode_word = st.sampled_from(MODE_VALUES)
mode_like_text = st.one_of(
    mode_word,
    padded(mode_word.flatmap(cased)),
    mode_word.flatmap(homoglyphed),
    padded(mode_word.flatmap(homoglyphed)),
    mode_word.flatmap(garbled),
    noise,
    st.text(max_size=24),
)

_known_models = sorted(
    {
        *(key for table in BUILT_IN.tables.values() for key in (*table.exact, *table.prefixes)),
        *(
            candidate.rule
            for table in BUILT_IN.tables.values()
            for match in table.exact.values()
            for candidate in match.candidates
        ),
    }
)
known_model = st.sampled_from(_known_models)
NAMESPACES = ["platform/", "platform:", "PLATFORM/", " platform:", "platform /", "platform\\"]
model_text = st.one_of(
    st.none(),
    st.just(""),
    known_model,
    padded(known_model.flatmap(cased)),
    st.builds(lambda key, tail: key + tail, known_model, st.text(max_size=8)),
    st.builds(lambda ns, tail: ns + tail, st.sampled_from(NAMESPACES), st.text(max_size=8)),
    known_model.flatmap(garbled),
    known_model.flatmap(homoglyphed),
    st.text(max_size=30),
)

known_runtime = st.sampled_from(sorted(BUILT_IN.runtimes))
runtime_text = st.one_of(
    st.none(),
    known_runtime,
    padded(known_runtime.flatmap(cased)),
    known_runtime.flatmap(garbled),
    st.sampled_from(["*", "", " ", "nosuchruntime", "claude_code"]),
    st.text(max_size=16),
)

# Names a tenant can store: the platform's own namespace (MOLECULE_LLM_*) is refused on write.
_credential_names = sorted(BUILT_IN.vendor_auth_env | {"CLAUDE_CODE_OAUTH_TOKEN"})
credential_name = st.sampled_from(_credential_names)
secret_name = st.one_of(
    credential_name,
    credential_name.map(str.lower),
    padded(credential_name),
    st.from_regex(r"[A-Z_][A-Z0-9_]{0,16}", fullmatch=True),
    st.text(max_size=12),
)
secret_names = st.frozensets(secret_name, max_size=6)

workspace_ids = st.one_of(
    st.none(), st.just(""), st.just(" "), st.uuids().map(str), st.text(max_size=12)
)
override_value = st.one_of(
    st.none(),
    mode_like_text,
    st.builds(OverrideReadFailure, st.text(max_size=30)),
)
resolution_inputs = st.builds(
    ResolutionInput,
    workspace_id=workspace_ids,
    override=override_value,
    org_default=st.one_of(st.none(), mode_like_text),
    runtime=runtime_text,
    model=model_text,
    auth_env=secret_names,
    proxy_configured=st.booleans(),
)
registries = st.sampled_from([(None, None), (BUILT_IN, BUILT_IN_TWIN)])


# --- no I/O inside a decision --------------------------------------------------------------------

_IO_EVENTS = (
    "open",
    "os.",
    "socket.",
    "subprocess.",
    "sqlite3.",
    "shutil.",
    "urllib.",
    "http.",
    "glob.",
    "ctypes.",
    "import",
    "tempfile.",
)


class IoWatch:
    """Records the I/O audit events (PEP 578) raised on one thread while watching."""

    def __init__(self) -> None:
        self.thread: int | None = None
        self.seen: list[str] = []

    def __call__(self, event: str, _args: tuple[Any, ...]) -> None:
        # Called for every audit event of the process for the rest of the session: the common
        # case (not watching) returns at once.
        if self.thread is None:
            return
        if self.thread == threading.get_ident() and event.startswith(_IO_EVENTS):
            self.seen.append(event)

    def watch(self, call: Callable[[], BillingDecision]) -> BillingDecision:
        self.seen.clear()
        self.thread = threading.get_ident()
        try:
            return call()
        finally:
            self.thread = None


IO_WATCH = IoWatch()
sys.addaudithook(IO_WATCH)  # hooks cannot be removed; it records nothing unless watching


def test_the_io_watch_sees_io_so_its_silence_means_something(tmp_path: Path) -> None:
    """The control of the no-I/O check: a call that opens a file is seen."""

    def opens_a_file() -> BillingDecision:
        (tmp_path / "touched").write_text("x")
        return resolve_billing_mode(ResolutionInput(), BUILT_IN)

    IO_WATCH.watch(opens_a_file)
    assert "open" in IO_WATCH.seen


# --- the invariants -------------------------------------------------------------------------------


def normalized(raw: str | None) -> str | None:
    """Spec §2 rung 2, computed here independently: trim white space, lowercase."""
    if raw is None:
        return None
    text = raw.strip().lower()
    return text if text in MODE_VALUES else None


def assert_section_2_invariants(
    inputs: ResolutionInput,
    registry: CompiledRegistry | None,
    policy: CompiledPolicy,
    decision: BillingDecision,
) -> None:
    """Every §2 invariant (and the record's coherence) for one decision."""
    record = decision.to_dict()
    mode, source, error = record["mode"], record["source"], record["error"]
    default_mode = "platform_managed" if inputs.proxy_configured else "byok"
    read_failed = bool(inputs.workspace_id) and isinstance(inputs.override, OverrideReadFailure)

    # The decided mode is always one of the three modes, whatever the input.
    assert mode in MODE_VALUES
    assert source in SOURCES

    # A failed read decides the deployment default, under every policy, with the error beside.
    if read_failed:
        assert (mode, source) == (default_mode, "constant_fallback"), record
        assert error is not None
        assert error["code"] == "OVERRIDE_READ_FAILED", record
    else:
        assert source != "constant_fallback", record

    # byok only from a recognized override, a recognized org default, a derived vendor
    # provider, or the self-host deployment default. Never from an error on SaaS.
    if mode == "byok":
        by = {
            "workspace_override": record["workspace_override"] == "byok",
            "org_default": record["org_default"]["recognized"] == "byok",
            "derived_provider": registry is not None
            and record["provider"] in registry.providers
            and record["provider"] != registry.platform_provider,
            "derived_default": not inputs.proxy_configured,
            "constant_fallback": not inputs.proxy_configured,
        }
        assert by[source], record
    if inputs.proxy_configured and source in FAIL_CLOSED_SOURCES:
        assert mode == "platform_managed", record
    if mode == "disabled":
        assert source in {"workspace_override", "org_default"}, record

    # An error never prevents a decision: it travels beside a valid one, and it is one of the
    # two operational faults (the read, the registry), nothing else.
    if error is not None:
        assert error["code"] in {"OVERRIDE_READ_FAILED", "REGISTRY_UNAVAILABLE"}, record
        assert error["message"], record
        if error["code"] == "REGISTRY_UNAVAILABLE":
            assert registry is None, record

    # What the record says was recognized is exactly what the spec recognizes.
    exact = inputs.override if isinstance(inputs.override, str) else None
    if source == "workspace_override":
        assert inputs.workspace_id, record
        assert record["workspace_override"] == exact == mode, record
    assert record["workspace_override"] in (None, exact), record
    assert record["org_default"] == {
        "raw": inputs.org_default,
        "recognized": normalized(inputs.org_default),
    }, record
    if source == "org_default":
        assert mode == normalized(inputs.org_default), record
    if source == "derived_provider":
        assert registry is not None
        platform = record["provider"] == registry.platform_provider
        assert mode == ("platform_managed" if platform else "byok"), record
    assert record["deployment"] == {
        "proxy_configured": inputs.proxy_configured,
        "default_mode": default_mode,
    }
    assert record["workspace_id"] == inputs.workspace_id

    # The trace: one entry per rung of the policy, in its order; exactly one decided, on the
    # rung the source names; nothing after it consulted.
    trace = record["trace"]
    assert [entry["rung"] for entry in trace] == [rung.value for rung in policy.rungs]
    decided = [i for i, entry in enumerate(trace) if entry["status"] == "decided"]
    assert len(decided) == 1, record
    assert trace[decided[0]]["rung"] == DECIDING_RUNG[source], record
    assert all(entry["status"] == "skipped" for entry in trace[decided[0] + 1 :]), record
    assert all(entry["why"] for entry in trace), record


@dataclass
class Tally:
    examples: int = 0
    by_source: dict[str, int] = field(default_factory=dict)

    def count(self, decision: BillingDecision) -> None:
        self.examples += 1
        key = f"{decision.mode.value}/{decision.source.value}"
        self.by_source[key] = self.by_source.get(key, 0) + 1


PURE_TALLY = Tally()


@settings(
    max_examples=PURE_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    inputs=resolution_inputs,
    registry_pair=registries,
    policy_triple=policies,
)
def _every_invariant_holds(
    inputs: ResolutionInput,
    registry_pair: tuple[CompiledRegistry | None, CompiledRegistry | None],
    policy_triple: tuple[dict[str, Any], CompiledPolicy, CompiledPolicy],
) -> None:
    registry, twin_registry = registry_pair
    _, policy, twin_policy = policy_triple
    decision = IO_WATCH.watch(lambda: resolve_billing_mode(inputs, registry, policy))
    assert IO_WATCH.seen == [], "a decision did I/O"
    assert_section_2_invariants(inputs, registry, policy, decision)

    # Pure: the same inputs (as a new object, under a registry and a policy compiled again)
    # give the same decision, with no I/O on the way either.
    same = replace(inputs, auth_env=frozenset(set(inputs.auth_env)))
    again = IO_WATCH.watch(lambda: resolve_billing_mode(same, twin_registry, twin_policy))
    assert IO_WATCH.seen == [], "a decision did I/O"
    assert again.to_dict() == decision.to_dict()
    assert resolve_billing_mode(inputs, registry, policy) == decision
    PURE_TALLY.count(decision)


def test_every_section_2_invariant_holds_over_the_whole_decision_input_space() -> None:
    PURE_TALLY.examples = 0
    PURE_TALLY.by_source.clear()
    started = time.perf_counter()

    _every_invariant_holds()

    elapsed = time.perf_counter() - started
    assert PURE_TALLY.examples >= PURE_EXAMPLES
    # The draws reach every source, so no rung's invariants went untested.
    reached = {key.split("/")[1] for key in PURE_TALLY.by_source}
    assert reached == SOURCES
    report(
        f"pure fail-closed property: {PURE_TALLY.examples:,} examples, 0 violations,"
        f" {elapsed:.1f} s; mode/source: {dict(sorted(PURE_TALLY.by_source.items()))}"
    )


# --- faults at every read of a real store ---------------------------------------------------------


class Fault(StrEnum):
    """Where the read fails. Row faults damage the workspace's own rows; store faults make the
    whole database unreadable before the first row."""

    NONE = "none"
    # Row faults (both engines): the workspace has no model column, so the read decrypts its
    # sealed MODEL secret; the sealed value is damaged.
    CIPHERTEXT_TAMPERED = "ciphertext_tampered"
    CIPHERTEXT_NOT_BASE64 = "ciphertext_not_base64"
    KEY_VERSION_UNKNOWN = "key_version_unknown"
    # A damaged credential is never read by a decision (names only): nothing changes.
    CREDENTIAL_TAMPERED = "credential_tampered"
    # Store faults.
    SQLITE_PATH_IS_A_DIRECTORY = "sqlite_path_is_a_directory"
    SQLITE_NOT_A_DATABASE = "sqlite_not_a_database"
    SQLITE_UNREADABLE = "sqlite_unreadable"
    SQLITE_TABLE_DROPPED = "sqlite_table_dropped"
    POSTGRES_PORT_CLOSED = "postgres_port_closed"
    POSTGRES_DATABASE_MISSING = "postgres_database_missing"
    POSTGRES_BACKEND_TERMINATED = "postgres_backend_terminated"


ROW_FAULTS = {
    Fault.CIPHERTEXT_TAMPERED,
    Fault.CIPHERTEXT_NOT_BASE64,
    Fault.KEY_VERSION_UNKNOWN,
}
FAULTS_BY_ENGINE = {
    "sqlite": [
        Fault.NONE,
        *sorted(ROW_FAULTS),
        Fault.CREDENTIAL_TAMPERED,
        Fault.SQLITE_PATH_IS_A_DIRECTORY,
        Fault.SQLITE_NOT_A_DATABASE,
        Fault.SQLITE_TABLE_DROPPED,
        # root reads any file whatever its mode: the test can only make it unreadable to others.
        *([Fault.SQLITE_UNREADABLE] if os.geteuid() != 0 else []),
    ],
    "postgresql": [
        Fault.NONE,
        *sorted(ROW_FAULTS),
        Fault.CREDENTIAL_TAMPERED,
        Fault.POSTGRES_PORT_CLOSED,
        Fault.POSTGRES_DATABASE_MISSING,
        Fault.POSTGRES_BACKEND_TERMINATED,
    ],
}
STORE_FAULTS = {fault for faults in FAULTS_BY_ENGINE.values() for fault in faults} - ROW_FAULTS
STORE_FAULTS -= {Fault.NONE, Fault.CREDENTIAL_TAMPERED}
# A password in a URL must never reach a decision's error message.
URL_PASSWORD = "pw-SENTINEL-never-shown"

# Stored text: any text a tool could write (valid UTF-8; PostgreSQL text cannot hold NUL).
stored_text = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\x00"), max_size=24)
stored_mode_like = mode_like_text.map(lambda text: text.replace("\x00", ""))
# A model column another tool left blank in a way SQL's trim() does not see.
white_space_only = st.text(alphabet=st.sampled_from(WHITE_SPACE), min_size=1, max_size=3)


@dataclass(frozen=True)
class StoredState:
    """One workspace as stored, and the deployment it is decided under."""

    override: str | None
    org_default: str | None
    runtime: str
    model: str | None
    model_secret: str | None
    credentials: frozenset[str]
    proxy_configured: bool
    deployment_org_default: str | None


def _model_secret(model: str | None) -> st.SearchStrategy[str | None]:
    # Only a workspace without a model reads a MODEL secret; row faults need one to damage.
    if model is not None and model.strip():
        return st.none()
    return st.one_of(known_model, model_text.filter(lambda m: m is not None and "\x00" not in m))


stored_states = st.builds(
    lambda override, org_default, runtime, model_pair, credentials, proxy, deployment: StoredState(
        override=override,
        org_default=org_default,
        runtime=runtime,
        model=model_pair[0],
        model_secret=model_pair[1],
        credentials=credentials,
        proxy_configured=proxy,
        deployment_org_default=deployment,
    ),
    # The column has a CHECK: only the three modes or NULL can be stored.
    override=st.one_of(st.none(), mode_word),
    org_default=st.one_of(st.none(), stored_mode_like),
    runtime=st.one_of(known_runtime, stored_text.filter(lambda text: text.strip() != "")),
    model_pair=st.one_of(st.none(), known_model, stored_text, white_space_only).flatmap(
        lambda model: st.tuples(st.just(model), _model_secret(model))
    ),
    credentials=st.frozensets(credential_name, max_size=3),
    proxy=st.booleans(),
    deployment=st.one_of(st.none(), stored_mode_like),
)

PROXY = ProxySettings(base_url="https://proxy.example/v1", usage_token="usage-token")


@dataclass
class FaultHarness:
    """The session database of one engine, and the ways to make its reads fail."""

    engine: str
    url: str
    store: Store
    folder: Path
    sqlite_template: Path | None
    tally: dict[str, int] = field(default_factory=dict)

    def context(
        self,
        store: Store,
        state: StoredState,
        registry: CompiledRegistry | None,
        policy: CompiledPolicy,
    ) -> ServiceContext:
        return ServiceContext(
            store,
            DeploymentInputs(
                proxy=PROXY if state.proxy_configured else ProxySettings(),
                org_default=state.deployment_org_default,
            ),
            registry,
            key_ring_loader=lambda: KeyRing.parse(KEY_RING_TEXT),
            policy=policy,
        )

    def store_workspace(self, context: ServiceContext, state: StoredState) -> tuple[Any, Any]:
        org = admin.create_org(context, "fault-org")
        if state.org_default is not None:
            with context.store.engine.begin() as connection:
                connection.execute(
                    update(organizations)
                    .where(organizations.c.id == org.id)
                    .values(llm_billing_mode_default=state.org_default)
                )
        # A write checks the runtime against the registry, so with none loaded the row is
        # written as it was before the registry broke; the decision below reads it without one.
        writer = (
            context
            if context.registry is not None
            else self.context(context.store, state, BUILT_IN, context.policy)
        )
        workspace = admin.create_workspace(writer, org.id, override=state.override)
        # Runtime and model as another tool might have written them: raw, unchecked.
        with context.store.engine.begin() as connection:
            connection.execute(
                update(workspaces)
                .where(workspaces.c.id == workspace.id)
                .values(runtime=state.runtime, model=state.model)
            )
        for index, name in enumerate(sorted(state.credentials)):
            scope: SecretScopeName = "org" if index % 2 else "workspace"
            owner = org.id if scope == "org" else workspace.id
            secrets.set_secret(context, scope, owner, name, f"value-of-{name}")
        if state.model_secret is not None:
            secrets.set_secret(context, "workspace", workspace.id, "MODEL", state.model_secret)
        return org.id, workspace.id

    def damage_row(self, fault: Fault, state: StoredState, workspace_id: Any) -> None:
        if fault is Fault.CREDENTIAL_TAMPERED:
            values: dict[str, Any] = {"ciphertext": _tampered(self.store, workspace_id, None)}
            name = None
        elif fault is Fault.CIPHERTEXT_TAMPERED:
            name = "MODEL"
            values = {"ciphertext": _tampered(self.store, workspace_id, name)}
        elif fault is Fault.CIPHERTEXT_NOT_BASE64:
            name, values = "MODEL", {"ciphertext": "not base64 at all!"}
        else:
            name, values = "MODEL", {"key_version": 999}
        statement = (
            update(workspace_secrets)
            .where(workspace_secrets.c.workspace_id == workspace_id)
            .values(**values)
        )
        if name is not None:
            statement = statement.where(workspace_secrets.c.key == name)
        else:
            statement = statement.where(workspace_secrets.c.key != "MODEL")
        with self.store.engine.begin() as connection:
            connection.execute(statement)

    def broken_store(self, fault: Fault) -> Store:
        """A store whose every read fails, the way ``fault`` says."""
        place = self.folder / uuid.uuid4().hex
        place.mkdir()
        if fault is Fault.SQLITE_PATH_IS_A_DIRECTORY:
            (place / "store.sqlite3").mkdir()
            return open_store(f"sqlite:///{place / 'store.sqlite3'}")
        if fault is Fault.SQLITE_NOT_A_DATABASE:
            (place / "store.sqlite3").write_bytes(os.urandom(8192))
            return open_store(f"sqlite:///{place / 'store.sqlite3'}")
        if fault is Fault.SQLITE_UNREADABLE:
            assert self.sqlite_template is not None
            shutil.copyfile(self.sqlite_template, place / "store.sqlite3")
            (place / "store.sqlite3").chmod(0)
            return open_store(f"sqlite:///{place / 'store.sqlite3'}")
        if fault is Fault.SQLITE_TABLE_DROPPED:
            assert self.sqlite_template is not None
            shutil.copyfile(self.sqlite_template, place / "store.sqlite3")
            store = open_store(f"sqlite:///{place / 'store.sqlite3'}")
            with store.engine.begin() as connection:
                connection.execute(text("DROP TABLE org_secrets"))
            return store
        url = make_url(self.url).set(password=URL_PASSWORD)
        if fault is Fault.POSTGRES_PORT_CLOSED:
            return open_store(url.set(port=closed_port()).render_as_string(hide_password=False))
        if fault is Fault.POSTGRES_DATABASE_MISSING:
            missing = url.set(database=f"llmbilling_missing_{uuid.uuid4().hex[:8]}")
            return open_store(missing.render_as_string(hide_password=False))
        assert fault is Fault.POSTGRES_BACKEND_TERMINATED
        store = open_store(self.url, pool_pre_ping=False)
        terminate_pooled_connections(store)
        return store


def _tampered(store: Store, workspace_id: Any, name: str | None) -> str:
    """One sealed value of the workspace with one byte of its ciphertext flipped: still base64,
    still the right length, but its authentication tag no longer matches."""
    with store.read_engine.connect() as connection:
        statement = workspace_secrets.select().where(
            workspace_secrets.c.workspace_id == workspace_id
        )
        if name is not None:
            statement = statement.where(workspace_secrets.c.key == name)
        else:
            statement = statement.where(workspace_secrets.c.key != "MODEL")
        row = connection.execute(statement.limit(1)).mappings().one()
    blob = bytearray(base64.b64decode(row["ciphertext"]))
    blob[-1] ^= 0x01
    return base64.b64encode(bytes(blob)).decode()


def closed_port() -> int:
    """A local TCP port nothing listens on (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def terminate_pooled_connections(store: Store) -> None:
    """Open the read pool's connection, then kill its server process from another session:
    the pool still holds it, and the next read finds it dead."""
    with store.read_engine.connect() as connection:
        pid = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
    admin_engine = create_engine(
        make_url(POSTGRES_ADMIN_URL).set(drivername="postgresql+psycopg"),
        isolation_level="AUTOCOMMIT",
    )
    try:
        with admin_engine.connect() as connection:
            killed = connection.execute(
                text("SELECT pg_terminate_backend(:pid)"), {"pid": pid}
            ).scalar_one()
            assert killed
    finally:
        admin_engine.dispose()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def fault_harness(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FaultHarness]:
    engine: str = request.param
    folder = tmp_path_factory.mktemp(f"faults-{engine}")
    template: Path | None = None
    if engine == "sqlite":
        template = folder / "template.sqlite3"
        template_store = open_store(f"sqlite:///{template}")
        migrate.upgrade(template_store)
        template_store.close()
        url = f"sqlite:///{folder / 'store.sqlite3'}"
    else:
        url = request.getfixturevalue("postgres_server").create_database()
    store = open_store(url)
    migrate.upgrade(store)
    harness = FaultHarness(engine, url, store, folder, template)
    yield harness
    store.close()


def expected_inputs(state: StoredState, workspace_id: Any) -> ResolutionInput:
    """What the read path must decide from, computed from the drawn state (spec §4, §5)."""
    model = state.model.strip() if state.model is not None and state.model.strip() else None
    if model is None and state.model_secret is not None and state.model_secret.strip():
        model = state.model_secret.strip()
    return ResolutionInput(
        workspace_id=str(workspace_id),
        override=state.override,
        org_default=(
            state.org_default if state.org_default is not None else state.deployment_org_default
        ),
        runtime=state.runtime,
        model=model,
        auth_env=state.credentials | ({"MODEL"} if state.model_secret is not None else set()),
        proxy_configured=state.proxy_configured,
    )


def run_fault_example(
    harness: FaultHarness,
    state: StoredState,
    fault: Fault,
    registry: CompiledRegistry | None,
    policy: CompiledPolicy,
) -> None:
    context = harness.context(harness.store, state, registry, policy)
    fault_store: Store | None = None
    try:
        needs_model_secret = fault in ROW_FAULTS
        if needs_model_secret and state.model_secret is None:
            state = replace(state, model=None, model_secret="claude-opus-4-7")
        if fault is Fault.CREDENTIAL_TAMPERED and not state.credentials:
            state = replace(state, credentials=frozenset({"OPENAI_API_KEY"}))
        org_id, workspace_id = harness.store_workspace(context, state)
        if fault in STORE_FAULTS:
            fault_store = harness.broken_store(fault)
            context = harness.context(fault_store, state, registry, policy)
        elif fault is not Fault.NONE:
            harness.damage_row(fault, state, workspace_id)

        # Never an exception to the caller of resolve_workspace.
        decision = resolve_workspace(context, workspace_id)
        inputs = expected_inputs(state, workspace_id)
        record = decision.to_dict()
        if fault in STORE_FAULTS or fault in ROW_FAULTS:
            # Nothing read is trusted: only the deployment's own inputs are left.
            failed = ResolutionInput(
                workspace_id=str(workspace_id),
                override=OverrideReadFailure("the read failed"),
                org_default=state.deployment_org_default,
                proxy_configured=state.proxy_configured,
            )
            assert_section_2_invariants(failed, registry, policy, decision)
            assert record["error"] is not None
            assert URL_PASSWORD not in record["error"]["message"]
            assert "value-of-" not in str(record)
        else:
            assert_section_2_invariants(inputs, registry, policy, decision)
            pure = resolve_billing_mode(inputs, registry, policy)
            assert record == {**pure.to_dict(), "workspace_id": str(workspace_id)}

        # The what-if of the same org under the same configuration: the row counted as the
        # decision above, or a typed failure when the store cannot be read at all.
        same = Configuration(policy, registry)
        if fault in STORE_FAULTS:
            if fault is Fault.POSTGRES_BACKEND_TERMINATED:
                # The read above replaced the dead connection: kill the new one too.
                assert fault_store is not None
                terminate_pooled_connections(fault_store)
            with pytest.raises(StoreUnavailableError) as raised:
                run_whatif(context, same, org_id=org_id)
            assert URL_PASSWORD not in raised.value.message
        else:
            whatif = run_whatif(context, same, org_id=org_id)
            unchanged = (decision.mode.value, decision.mode.value)
            assert whatif.total == 1
            assert whatif.mode_transitions == {unchanged: 1}
            assert whatif.source_transitions == {(decision.source.value, decision.source.value): 1}
            assert not whatif.has_danger
        harness.tally[fault.value] = harness.tally.get(fault.value, 0) + 1
    finally:
        if fault_store is not None:
            fault_store.close()


def test_store_faults_at_every_read_decide_fail_closed(fault_harness: FaultHarness) -> None:
    faults = FAULTS_BY_ENGINE[fault_harness.engine]
    fault_harness.tally.clear()
    started = time.perf_counter()

    @settings(
        max_examples=FAULT_EXAMPLES,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
        database=None,
    )
    @given(
        state=stored_states,
        fault=st.sampled_from(faults),
        registry=st.sampled_from([None, BUILT_IN]),
        policy_triple=policies,
    )
    def faults_decide_fail_closed(
        state: StoredState,
        fault: Fault,
        registry: CompiledRegistry | None,
        policy_triple: tuple[dict[str, Any], CompiledPolicy, CompiledPolicy],
    ) -> None:
        run_fault_example(fault_harness, state, fault, registry, policy_triple[1])

    faults_decide_fail_closed()

    elapsed = time.perf_counter() - started
    examples = sum(fault_harness.tally.values())
    assert examples >= FAULT_EXAMPLES
    report(
        f"fault property on {fault_harness.engine}: {examples:,} examples, 0 violations,"
        f" {elapsed:.1f} s; by fault: {dict(sorted(fault_harness.tally.items()))}"
    )


@pytest.mark.parametrize(
    ("fault_harness", "fault"),
    [
        (engine, fault)
        for engine, faults in FAULTS_BY_ENGINE.items()
        for fault in faults
        if fault is not Fault.NONE
    ],
    indirect=["fault_harness"],
)
def test_each_fault_alone_decides_the_saas_default_beside_its_error(
    fault_harness: FaultHarness, fault: Fault
) -> None:
    """Every fault once, on a state that would otherwise decide byok on SaaS: an org default
    of byok, a vendor model with its own key, and a deployment org default of byok."""
    state = StoredState(
        override=None,
        org_default="byok",
        runtime="codex",
        model=None,
        model_secret="gpt-5.5",
        credentials=frozenset({"OPENAI_API_KEY"}),
        proxy_configured=True,
        deployment_org_default="byok",
    )
    context = fault_harness.context(fault_harness.store, state, BUILT_IN, CONTRACT_POLICY)
    _, workspace_id = fault_harness.store_workspace(context, state)
    fault_store: Store | None = None
    try:
        if fault in STORE_FAULTS:
            fault_store = fault_harness.broken_store(fault)
            context = fault_harness.context(fault_store, state, BUILT_IN, CONTRACT_POLICY)
        else:
            fault_harness.damage_row(fault, state, workspace_id)

        record = resolve_workspace(context, workspace_id).to_dict()
    finally:
        if fault_store is not None:
            fault_store.close()

    if fault is Fault.CREDENTIAL_TAMPERED:
        # Decisions read secret names, never values: a damaged value changes nothing.
        assert (record["mode"], record["source"], record["error"]) == ("byok", "org_default", None)
    else:
        assert (record["mode"], record["source"]) == ("platform_managed", "constant_fallback")
        assert record["error"]["code"] == "OVERRIDE_READ_FAILED"
        assert URL_PASSWORD not in record["error"]["message"]


@pytest.mark.parametrize(
    "policy",
    [compiled for _, compiled, _ in ALL_POLICIES],
    ids=[
        "-".join(document["rungs"][:-1]) + ("+own_key" if own else "")
        for document, _, _ in ALL_POLICIES
        for own in [document["options"]["own_key_wins_over_org_default"]]
    ],
)
def test_a_failed_read_fails_closed_under_every_policy(policy: CompiledPolicy) -> None:
    """Whatever the policy's order (or whether it has an override rung at all), an unreadable
    store decides the deployment default with the error beside it: inputs that would decide
    byok from the org default or a vendor model are not consulted."""
    inputs = ResolutionInput(
        workspace_id=str(uuid.uuid4()),
        override=OverrideReadFailure("OperationalError: connection refused"),
        org_default="byok",
        runtime="codex",
        model="gpt-5.5",
        auth_env=frozenset({"OPENAI_API_KEY"}),
        proxy_configured=True,
    )
    record = resolve_billing_mode(inputs, BUILT_IN, policy).to_dict()
    assert (record["mode"], record["source"]) == ("platform_managed", "constant_fallback")
    assert record["error"]["code"] == "OVERRIDE_READ_FAILED"


@pytest.mark.parametrize("fault_harness", ["sqlite", "postgresql"], indirect=True)
@pytest.mark.parametrize("blank", ["\t", "\n", "\xa0", "\u3000", " \u2028 "])
def test_the_read_path_and_provisioning_agree_on_a_model_column_of_white_space(
    fault_harness: FaultHarness, blank: str
) -> None:
    """Provisioning treats a white-space model as absent (Python's strip) and takes the MODEL
    secret; the read path must too, or it shows one decision and bills by another."""
    state = StoredState(
        override=None,
        org_default=None,
        runtime="codex",
        model=blank,
        model_secret="gpt-5.5",
        credentials=frozenset({"OPENAI_API_KEY"}),
        proxy_configured=True,
        deployment_org_default=None,
    )
    context = fault_harness.context(fault_harness.store, state, BUILT_IN, CONTRACT_POLICY)
    _, workspace_id = fault_harness.store_workspace(context, state)

    read = resolve_workspace(context, workspace_id)
    provisioned = provision_workspace(context, workspace_id).provision.decision

    assert (read.mode.value, read.source.value, read.provider) == (
        "byok",
        "derived_provider",
        "openai",
    )
    assert provisioned.to_dict() == read.to_dict()


def test_the_read_paths_white_space_is_exactly_what_str_strip_removes() -> None:
    expected = "".join(c for c in map(chr, range(sys.maxunicode + 1)) if c.isspace())
    assert expected == PYTHON_WHITE_SPACE


@pytest.mark.parametrize("fault_harness", ["sqlite", "postgresql"], indirect=True)
def test_a_whatif_that_loses_the_store_mid_scan_reports_nothing(
    fault_harness: FaultHarness,
) -> None:
    """The store fails between two pages of the fleet scan (the first page was read): the
    what-if raises a typed STORE_UNAVAILABLE instead of reporting a fleet it read in part.

    PostgreSQL: every other connection to the database is killed with pg_terminate_backend.
    SQLite (a private copy): a table the scan reads is dropped by another connection."""
    state = StoredState(
        override=None,
        org_default=None,
        runtime="codex",
        model="gpt-5.5",
        model_secret=None,
        credentials=frozenset(),
        proxy_configured=True,
        deployment_org_default=None,
    )
    store = fault_harness.store
    private: Store | None = None
    if fault_harness.engine == "sqlite":
        assert fault_harness.sqlite_template is not None
        place = fault_harness.folder / uuid.uuid4().hex
        place.mkdir()
        shutil.copyfile(fault_harness.sqlite_template, place / "store.sqlite3")
        private = store = open_store(f"sqlite:///{place / 'store.sqlite3'}", pool_pre_ping=False)
    context = fault_harness.context(store, state, BUILT_IN, CONTRACT_POLICY)
    org_id, _ = fault_harness.store_workspace(context, state)
    for _ in range(3):
        admin.create_workspace(context, org_id, runtime="codex", model="gpt-5.5")
    progress: list[int] = []

    def fail_the_store(done: int) -> None:
        progress.append(done)
        if len(progress) > 1:
            return
        if fault_harness.engine == "postgresql":
            terminate_other_connections(fault_harness.url)
        else:
            with store.engine.begin() as connection:
                connection.execute(text("DROP TABLE org_secrets"))

    try:
        with pytest.raises(StoreUnavailableError):
            run_whatif(
                context,
                Configuration(CONTRACT_POLICY, BUILT_IN),
                org_id=org_id,
                on_progress=fail_the_store,
                progress_every=1,
                page_size=2,
            )
    finally:
        if private is not None:
            private.close()
    assert progress[0] == 1  # the store failed after the first row, mid-scan
