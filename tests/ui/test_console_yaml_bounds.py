"""The console's what-if form bounds a pasted policy or registry before validating it
(docs/API.md "Document bounds"): a billion-laughs paste is shown back refused, with the
bound it broke, and no job starts. In-process form posts, plus one run in Chromium."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from uuid import UUID

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from playwright.sync_api import expect
from tests.core.hostile_documents import (
    A_PYTHON_TAG,
    BILLION_LAUGHS,
    TOO_DEEP,
    TOO_MANY_NODES,
)
from tests.ui.browsing import chromium, served_app

from llmbilling.api.app import create_app
from llmbilling.config.settings import Settings
from llmbilling.service import admin
from llmbilling.service.context import ServiceContext
from llmbilling.service.tokens import create_token
from llmbilling.store.crypto import KeyRing

ORIGIN = "http://testserver"


@dataclass(frozen=True)
class Console:
    app: FastAPI
    org_id: UUID
    org_admin_token: str


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    folder = tmp_path_factory.mktemp("console-yaml-bounds")
    settings = Settings(
        database_url=f"sqlite:///{folder / 'console.sqlite3'}",
        secret_keys=KeyRing.new_key_text(1),
    )
    context = ServiceContext.from_settings(settings)
    org = admin.create_org(context, "pasting-org")
    token = create_token(context, scope="org_admin", org_id=org.id).token
    yield Console(create_app(settings, context=context), org.id, token)
    context.close()


def signed_in(console: Console) -> TestClient:
    client = TestClient(console.app, base_url=ORIGIN, follow_redirects=False)
    response = client.post(
        "/console/login", data={"token": console.org_admin_token}, headers={"Origin": ORIGIN}
    )
    assert response.status_code == 303
    return client


@pytest.mark.parametrize("field", ["policy", "registry"])
@pytest.mark.parametrize(
    ("pasted", "problem"),
    [
        pytest.param(BILLION_LAUGHS, "anchors and aliases are not allowed", id="billion-laughs"),
        pytest.param(A_PYTHON_TAG, "explicit YAML tags are not allowed", id="tag"),
        pytest.param(TOO_DEEP, "levels deep", id="too-deep"),
        pytest.param(TOO_MANY_NODES, "nodes", id="too-many-nodes"),
    ],
)
def test_a_pasted_document_outside_the_bounds_is_shown_back_refused(
    console: Console, field: str, pasted: str, problem: str
) -> None:
    client = signed_in(console)
    jobs = console.app.state.whatif_jobs
    started_before = len(jobs.jobs())
    response = client.post(
        "/console/whatif",
        data={"policy": "", "registry": "", field: pasted, "org": str(console.org_id)},
        headers={"Origin": ORIGIN},
    )
    assert response.status_code == 422
    assert f"pasted {field}" in response.text
    assert "refused:" in response.text
    assert problem in response.text
    assert len(jobs.jobs()) == started_before


def test_a_billion_laughs_paste_is_refused_in_the_browser(console: Console) -> None:
    with chromium() as browser, served_app(console.app) as base_url:
        page = browser.new_page()
        page.goto(f"{base_url}/console/login")
        page.fill("input[name=token]", console.org_admin_token)
        page.click("button[type=submit]")
        page.goto(f"{base_url}/console/whatif")
        page.fill("textarea[name=policy]", BILLION_LAUGHS)
        page.click("text=Run what-if")
        expect(page.locator(".alert")).to_contain_text("anchors and aliases are not allowed")
        page.close()
