"""``run_server``: what ``llmbilling serve`` (and bench/decision_http.py) hand to uvicorn."""

from __future__ import annotations

import gc
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from llmbilling.api.limits import RequestHeadLimits
from llmbilling.cli import serve_command


def test_run_server_freezes_the_startup_heap_then_runs_uvicorn_without_access_log(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    events: list[str] = []
    calls: list[dict[str, Any]] = []

    def run(app: FastAPI, **options: Any) -> None:
        events.append("uvicorn.run")
        calls.append({"app": app, **options})

    monkeypatch.setattr(gc, "freeze", lambda: events.append("gc.freeze"))
    monkeypatch.setattr(uvicorn, "run", run)
    app = FastAPI()

    serve_command.run_server(app, host="127.0.0.1", port=8123)

    assert events == ["gc.freeze", "uvicorn.run"]
    (call,) = calls
    protocol = call.pop("http")
    assert call == {
        "app": app,
        "host": "127.0.0.1",
        "port": 8123,
        "log_config": None,
        "access_log": False,
        # An open OFREP event stream must not hold a stopping server for its lifetime.
        "timeout_graceful_shutdown": serve_command.GRACEFUL_SHUTDOWN_SECONDS,
    }
    # httptools, refusing a request head over the default limits (tests/reliability/
    # test_header_limits.py runs it for real).
    assert issubclass(protocol, HttpToolsProtocol)
    assert protocol.limits == RequestHeadLimits()
