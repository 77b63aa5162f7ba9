"""Schemathesis hooks of the contract run (``SCHEMATHESIS_HOOKS=<this module>``).

Each makes a case labelled valid actually valid, and never touches a case labelled invalid:

- One constraint the document cannot state: an ``expires_at`` must be later than
  now (else a 400 naming it, tested in ``tests/api/test_api_write_reasons.py``). A time valid
  by the schema but already past is moved to the far future, so the write is exercised.
- A generated ``If-Match`` names no version the store holds, so a write labelled valid is
  refused as stale (412, declared; schemathesis counts it as data the API rejected, and warns
  when every valid case of a write met it). It becomes ``*`` (whatever version is current), so
  the write is exercised; the 412 has its own tests (``tests/api/test_api_etags.py``).
- Schemathesis' coverage phase writes header values from letters and digits only
  (``ensure_valid_headers_schema``), whatever pattern the document declares, and labels them
  valid: it cannot write an entity tag (``"..."``), so it sends ``If-None-Match: 0``, and it
  may send ``Acknowledge-Dangers: 0``, both refused by their declared patterns (our 400). Such
  an ``If-None-Match`` becomes a tag of the declared form that matches no version; such an
  ``Acknowledge-Dangers`` names one real danger class.
- A plan body names its target by id (a workspace, an org, a secret's owner), and a random
  UUID names nothing (a 404, declared, but then no plan is ever proposed by a generated case
  and schemathesis warns that the data is missing). The ids of a seeded org and workspace
  (``LLMBILLING_CONTRACT_PLAN_TARGETS``, set by the contract test) stand in for them.
"""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, datetime
from typing import Any

import schemathesis
from pydantic import TypeAdapter, ValidationError

from llmbilling.api.etags import CONDITION_HEADER_PATTERN
from llmbilling.api.routes.plans import ACKNOWLEDGE_DANGERS_PATTERN
from llmbilling.api.schemas import Rfc3339DateTime
from llmbilling.core.whatif import DangerClass

FAR_FUTURE = "2999-01-01T00:00:00Z"
NO_VERSION_TAG = '"0"'
ANY_VERSION = "*"
_TIME = TypeAdapter(Rfc3339DateTime)
_CONDITION = re.compile(CONDITION_HEADER_PATTERN)
ACKNOWLEDGE_HEADER = "Acknowledge-Dangers"
_ACKNOWLEDGED = re.compile(ACKNOWLEDGE_DANGERS_PATTERN)


def move_past_expiry_to_the_future(body: object) -> None:
    """Every ``expires_at`` in the body, at any depth (an override, a plan's change)."""
    if isinstance(body, list):
        for item in body:
            move_past_expiry_to_the_future(item)
    if not isinstance(body, dict):
        return
    for value in body.values():
        move_past_expiry_to_the_future(value)
    if not isinstance(body.get("expires_at"), str):
        return
    try:
        expires_at = _TIME.validate_python(body["expires_at"])
    except ValidationError:
        return
    # The hook sees the value as generated; the server sees the same instant (in UTC).
    if expires_at <= datetime.now(UTC):
        body["expires_at"] = FAR_FUTURE


def write_valid_headers(headers: dict[str, Any]) -> None:
    if isinstance(headers.get("If-Match"), str):
        headers["If-Match"] = ANY_VERSION
    none_match = headers.get("If-None-Match")
    if isinstance(none_match, str) and not _CONDITION.match(none_match):
        headers["If-None-Match"] = NO_VERSION_TAG
    acknowledged = headers.get(ACKNOWLEDGE_HEADER)
    if isinstance(acknowledged, str) and not _ACKNOWLEDGED.match(acknowledged):
        headers[ACKNOWLEDGE_HEADER] = DangerClass.TO_DISABLED.value


PLAN_TARGETS_VARIABLE = "LLMBILLING_CONTRACT_PLAN_TARGETS"
PLAN_PATHS = ("/v1/plans", "/v1/plans/preview")


def aim_plans_at_seeded_targets(body: object, targets: dict[str, str]) -> None:
    """The ids of a plan body's change (and its ``org_id``) become the seeded ones."""
    if not isinstance(body, dict):
        return
    change = body.get("change")
    if isinstance(change, dict):
        for field in ("workspace_id", "org_id"):
            if isinstance(change.get(field), str):
                change[field] = targets[field]
        if isinstance(change.get("owner_id"), str) and change.get("scope") in ("org", "workspace"):
            change["owner_id"] = targets[f"{change['scope']}_id"]
    if isinstance(body.get("org_id"), str):
        body["org_id"] = targets["org_id"]


@schemathesis.hook
def before_call(context: Any, case: Any, kwargs: dict[str, Any]) -> None:
    if case.meta is None or not case.meta.generation.mode.is_positive:
        return
    targets = os.environ.get(PLAN_TARGETS_VARIABLE)
    if targets and case.path in PLAN_PATHS:
        aim_plans_at_seeded_targets(case.body, json.loads(targets))
    move_past_expiry_to_the_future(case.body)
    if case.headers:
        write_valid_headers(case.headers)
