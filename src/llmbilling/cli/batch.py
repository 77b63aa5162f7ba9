"""Batch resolution: JSON lines of decision inputs in, JSON lines of decision records out.

Streaming and constant-memory: one line is read, decided and written before the next is read.
A malformed line yields an error record in its place and the batch goes on.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from llmbilling.core.decision import (
    BillingDecision,
    ChainOutcome,
    OverrideReadFailure,
    ResolutionInput,
)
from llmbilling.core.policy import CompiledPolicy
from llmbilling.core.registry import CompiledRegistry
from llmbilling.core.resolve import resolve_billing_mode
from llmbilling.errors import InvalidInputError

BATCH_KEYS = (
    "workspace_id",
    "override",
    "override_read_failed",
    "org_default",
    "runtime",
    "model",
    "auth_env",
    "proxy_configured",
)
_TEXT_KEYS = ("workspace_id", "override", "org_default", "runtime", "model")
_FLAG_KEYS = ("override_read_failed", "proxy_configured")
CALLER_REPORTED_READ_FAILURE = OverrideReadFailure("the caller reported that the read failed")


def parse_batch_line(text: str, *, proxy_configured: bool) -> ResolutionInput:
    """Parse one input line. Raises :class:`InvalidInputError` naming the offending field.

    ``proxy_configured`` applies when the line does not say.
    """
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidInputError(
            "line", f"not valid JSON: {exc.msg} at column {exc.colno}"
        ) from None
    if not isinstance(document, dict):
        raise InvalidInputError("line", "must be a JSON object")
    for key in document:
        if key not in BATCH_KEYS:
            raise InvalidInputError(key, "unknown key", allowed=BATCH_KEYS)
    for key in _TEXT_KEYS:
        value = document.get(key)
        if value is not None and not isinstance(value, str):
            raise InvalidInputError(key, "must be a string or null")
    for key in _FLAG_KEYS:
        value = document.get(key)
        if value is not None and not isinstance(value, bool):
            raise InvalidInputError(key, "must be true, false or null")
    auth_env = _parse_auth_env(document.get("auth_env"))
    override: str | OverrideReadFailure | None = document.get("override")
    if document.get("override_read_failed"):
        override = CALLER_REPORTED_READ_FAILURE
    line_proxy = document.get("proxy_configured")
    return ResolutionInput(
        workspace_id=document.get("workspace_id"),
        override=override,
        org_default=document.get("org_default"),
        runtime=document.get("runtime"),
        model=document.get("model"),
        auth_env=auth_env,
        proxy_configured=proxy_configured if line_proxy is None else line_proxy,
    )


def _parse_auth_env(value: Any) -> frozenset[str]:
    if value is None:
        return frozenset()
    if not isinstance(value, list) or not all(isinstance(name, str) for name in value):
        raise InvalidInputError("auth_env", "must be a list of env-var names or null")
    return frozenset(value)


class DecisionLineEncoder:
    """Encodes decision records as compact JSON lines.

    Workspaces with equal inputs share one :class:`ChainOutcome` object, so its encoding is
    kept (a bounded number of them) and only the workspace id is encoded per line.
    """

    def __init__(self, max_cached: int = 4096) -> None:
        self._max_cached = max_cached
        self._encoded: dict[int, tuple[ChainOutcome, str]] = {}

    def encode(self, decision: BillingDecision) -> str:
        outcome = decision.outcome
        cached = self._encoded.get(id(outcome))
        if cached is None or cached[0] is not outcome:
            body = decision.to_dict()
            del body["workspace_id"]
            cached = (outcome, _compact(body)[1:])
            if len(self._encoded) >= self._max_cached:
                self._encoded.clear()
            self._encoded[id(outcome)] = cached
        return '{"workspace_id":' + _compact(decision.workspace_id) + "," + cached[1]


def _compact(value: object) -> str:
    # ASCII escapes keep any input (lone surrogates included) writable to any stream.
    return json.dumps(value, separators=(",", ":"))


def error_line(line_number: int, error: InvalidInputError) -> str:
    return _compact({"line": line_number, "error": error.to_dict()})


def resolve_lines(
    lines: Iterable[bytes],
    registry: CompiledRegistry | None,
    policy: CompiledPolicy,
    *,
    proxy_configured: bool,
) -> Iterator[str]:
    """Yield one output line (without newline) per non-blank input line, in order."""
    encoder = DecisionLineEncoder()
    for line_number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            text = raw.decode("utf-8")
            inputs = parse_batch_line(text, proxy_configured=proxy_configured)
        except UnicodeDecodeError:
            yield error_line(line_number, InvalidInputError("line", "not valid UTF-8"))
            continue
        except InvalidInputError as exc:
            yield error_line(line_number, exc)
            continue
        yield encoder.encode(resolve_billing_mode(inputs, registry, policy))
