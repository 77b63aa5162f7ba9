"""Fail closed under real store faults: the read path and the what-if, with a fault at every
read.

Real stores (a SQLite file and a PostgreSQL database) hold a drawn workspace (``stored_states``
of ``tests/strategies.py``); the read then fails at a drawn point — the database path is a
directory, the file is not a database, a table is gone, the port is closed, the database does
not exist, the pooled connection was killed with ``pg_terminate_backend``, the sealed model
secret's ciphertext was corrupted or names an unknown key version — and ``resolve_workspace``
must still answer the ``constant_fallback`` decision with the error beside it, never raise,
never ``byok`` on SaaS; the fleet what-if must either count the row as that same fallback (row
faults) or fail with a typed ``STORE_UNAVAILABLE`` (store faults), never report a fleet it did
not read. Without a fault the stored decision equals the pure core's on the drawn inputs. The
faults and the harness: ``tests/reliability/store_faults.py``.

Beside the property, named tests: every fault alone on a state that would otherwise decide byok
on SaaS; a what-if that loses the store between two pages; the read path and provisioning
agreeing on a model column of white space (found by the long run: SQL's trim and Python's strip
disagreed).

The same invariants over the pure core's whole input space: ``test_fail_closed_decisions.py``.

Bounded in CI (``FAULT_EXAMPLES`` per engine). The long run:

    LLMBILLING_LONG_RUN=1 .venv/bin/pytest -s -p no:xdist \\
        tests/reliability/test_fail_closed_store_faults.py

runs 2,000 fault examples per engine and prints the example counts and times.
"""

from __future__ import annotations

import shutil
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from tests.reliability.long_run import LONG_RUN, report
from tests.reliability.store_faults import (
    FAULTS_BY_ENGINE,
    STORE_FAULTS,
    URL_PASSWORD,
    Fault,
    FaultHarness,
    run_fault_example,
)
from tests.store.db_fixtures import terminate_other_connections
from tests.strategies import BUILT_IN, PolicyTriple, StoredState, policies, stored_states

from llmbilling.core.policy import CONTRACT_POLICY
from llmbilling.core.registry import CompiledRegistry
from llmbilling.core.whatif import Configuration
from llmbilling.errors import StoreUnavailableError
from llmbilling.service import admin
from llmbilling.service.provision import provision_workspace
from llmbilling.service.resolve import resolve_workspace
from llmbilling.service.whatif import run_whatif
from llmbilling.store import migrate
from llmbilling.store.engine import Store, open_store
from llmbilling.store.workspace_read import PYTHON_WHITE_SPACE

FAULT_EXAMPLES = 2_000 if LONG_RUN else 100


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
        policy_triple: PolicyTriple,
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
