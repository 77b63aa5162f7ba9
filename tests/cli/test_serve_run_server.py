"""``run_server``: what ``llmbilling serve`` (and bench/decision_http.py) hand to uvicorn."""

from __future__ import annotations

import gc
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI

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
    assert calls == [
        {"app": app, "host": "127.0.0.1", "port": 8123, "log_config": None, "access_log": False}
    ]
