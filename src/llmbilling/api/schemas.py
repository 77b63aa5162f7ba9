"""Request and response bodies, as pydantic models: they are the OpenAPI document's schemas.

Responses are built from the core's and the service's own ``to_dict`` wire shapes; these
models describe those shapes exactly (the schema fuzz test checks every response against them).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
)
from pydantic.json_schema import models_json_schema

from llmbilling.core.decision import ProvisioningStatus
from llmbilling.core.modes import (
    MODE_VALUES,
    BillingMode,
    DecisionSource,
    DerivationOutcome,
    RungName,
    RungStatus,
)
from llmbilling.core.policy import PolicyDocument
from llmbilling.core.registry import RegistryDocument
from llmbilling.service.admin import MAX_REASON_LENGTH, REASON_PATTERN

MAX_MODEL_LENGTH = 200


# RFC 3339 §5.6 date-time (the document's `format: date-time`): full-date "T" full-time with
# a "Z" or numeric offset ("t" and "z" may be lower case). Pydantic alone would also take a
# number of seconds ("0.5") or a date without a time, which the document does not allow.
_LOCAL_DATE_TIME = r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?"
_RFC3339_DATE_TIME = re.compile(_LOCAL_DATE_TIME + r"([Zz]|[+-][0-9]{2}:[0-9]{2})")
_EXAMPLE_TIME = "2026-01-31T12:00:00Z"


def _rfc3339_text(value: object) -> object:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and _RFC3339_DATE_TIME.fullmatch(value):
        return value
    if isinstance(value, str) and re.fullmatch(_LOCAL_DATE_TIME, value):
        raise ValueError(f"must name its time zone, Z or an offset (e.g. {_EXAMPLE_TIME})")
    raise ValueError(f"is not an RFC 3339 date-time (e.g. {_EXAMPLE_TIME})")


def _in_utc(moment: datetime) -> datetime:
    # 9999-12-31T23:00:00-05:00 is valid RFC 3339 but after the last instant Python (and the
    # store) can hold in UTC: a 400 naming the field, not a fault further in.
    try:
        return moment.astimezone(UTC)
    except OverflowError:
        raise ValueError("is outside the years 0001-9999 once taken to UTC") from None


Rfc3339DateTime = Annotated[AwareDatetime, BeforeValidator(_rfc3339_text), AfterValidator(_in_utc)]
"""A time as the document's ``format: date-time`` says: RFC 3339 text with an offset only,
given to the caller in UTC (the same instant)."""


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# --- the decision record (spec §2) -------------------------------------------------------------


class OrgDefaultModel(_Model):
    raw: str | None = Field(description="The org default as configured, unnormalized.")
    recognized: BillingMode | None = Field(description="The mode it normalizes to, or null.")


class DerivationModel(_Model):
    outcome: DerivationOutcome
    detail: str


class TraceEntryModel(_Model):
    rung: RungName
    status: RungStatus
    why: str


class DecisionErrorModel(_Model):
    code: str
    message: str


class DeploymentModel(_Model):
    proxy_configured: bool
    default_mode: BillingMode


class VersionsModel(_Model):
    policy: str = Field(description="Content hash of the precedence policy.")
    registry: str | None = Field(description="Content hash of the provider registry.")


class ProvisioningModel(_Model):
    """What provisioning would do with the stored state now, judged by secret names only."""

    status: ProvisioningStatus = Field(
        description="`ok`, or the error code provisioning would fail with; `unknown` when the"
        " stored state could not be read."
    )
    provider: str | None = Field(
        description="MISSING_BYOK_CREDENTIAL: the derived vendor provider (null: any vendor)."
    )
    satisfied_by: list[str] = Field(
        description="MISSING_BYOK_CREDENTIAL: credential names any one of which would satisfy"
        " it (sorted); empty otherwise."
    )


class Decision(_Model):
    """The decision record of spec §2."""

    workspace_id: str | None
    mode: BillingMode
    source: DecisionSource
    workspace_override: BillingMode | None
    org_default: OrgDefaultModel
    provider: str | None
    derivation: DerivationModel
    trace: list[TraceEntryModel]
    error: DecisionErrorModel | None
    deployment: DeploymentModel
    versions: VersionsModel
    provisioning: ProvisioningModel


def reason_field() -> Any:
    """The ``reason`` member of a write's body."""
    # Documented, checked by the service (whose 400 says what is wrong in words).
    return Field(
        default=None,
        description=f"Why the change is made: at most {MAX_REASON_LENGTH} characters, no"
        " control characters or line breaks; blank counts as none. Kept in the audit log.",
        json_schema_extra={"maxLength": MAX_REASON_LENGTH, "pattern": REASON_PATTERN},
    )


class SetOverride(_Model):
    mode: str = Field(
        description="One of the three modes, exactly.",
        json_schema_extra={"enum": list(MODE_VALUES)},
    )
    reason: str | None = reason_field()
    expires_at: Rfc3339DateTime | None = Field(
        default=None,
        description="RFC 3339 time with a time zone, in the future: past it the override no"
        " longer decides (the trace says it expired). null: it does not expire.",
    )


# --- orgs ---------------------------------------------------------------------------------------


class OrgDefault(_Model):
    org_id: str
    raw: str | None = Field(description="As stored; null when the org has no default.")
    recognized: BillingMode | None = Field(description="What the raw text normalizes to.")


def _any_case(word: str) -> str:
    return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else c for c in word)


# Documents what the service accepts (ASCII white space trimmed, ASCII letters lowercased, then
# a mode: core/modes.py normalize_mode_text); the service checks it and answers a 400 that
# lists the modes, so the pattern is not enforced a second time here.
_ASCII_SPACE = r"[ \t\n\r\v\f]*"
ORG_DEFAULT_PATTERN = (
    f"^{_ASCII_SPACE}(" + "|".join(_any_case(mode) for mode in MODE_VALUES) + f"){_ASCII_SPACE}$"
)


class SetOrgDefault(_Model):
    mode: str | None = Field(
        description=(
            "Any text that normalizes to a mode (ASCII white space trimmed, ASCII letters"
            " lowercased; any other character makes it not a mode); stored as given."
            " null removes the default."
        ),
        json_schema_extra={"pattern": ORG_DEFAULT_PATTERN},
    )
    reason: str | None = reason_field()


class Workspace(_Model):
    id: str
    org_id: str
    name: str | None
    runtime: str
    model: str | None
    llm_billing_mode: str | None = Field(description="The stored override (null = inherit).")


class WorkspaceWithDecision(_Model):
    workspace: Workspace
    decision: Decision


class WorkspacePage(_Model):
    items: list[WorkspaceWithDecision]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page.")


# --- provisioning ------------------------------------------------------------------------------


class ProvisionRequest(_Model):
    model: str | None = Field(
        default=None,
        description="The model of this request; persisted to the workspace.",
        max_length=MAX_MODEL_LENGTH,
        pattern=r"^[^\x00-\x1f\x7f]*$",
    )


class DecisionErrorCode(_Model):
    code: str


class ProvisionedEnv(_Model):
    """The env a workspace's container starts with. ``env`` holds secret values."""

    workspace_id: str | None
    mode: BillingMode
    source: DecisionSource
    provider: str | None
    model: str
    env_names: list[str]
    stripped: list[str]
    foreign_credentials_kept: list[str]
    warnings: list[str]
    decision_error: DecisionErrorCode | None
    flipped_from: BillingMode | None
    provision_id: int
    env: dict[str, str]


# --- audit ---------------------------------------------------------------------------------------


class AuditEntry(_Model):
    id: int
    occurred_at: datetime
    actor: str = Field(description="`token:<token id>` for API callers.")
    action: str
    org_id: str | None
    workspace_id: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    reason: str | None = Field(description="Why the change was made, when the writer said.")
    request_id: str


class AuditPage(_Model):
    items: list[AuditEntry]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next (older) page.")


# --- health --------------------------------------------------------------------------------------


class Health(_Model):
    status: str


# --- fleet what-if -------------------------------------------------------------------------------


COMPONENT_REF = "#/components/schemas/{model}"
# The route takes each document as a mapping and compiles it with the core's own model (a
# problem there is a 422 naming the path inside it): the document's schema is that model's.
_PROPOSED_DOCUMENTS: dict[str, type[BaseModel]] = {
    "policy": PolicyDocument,
    "registry": RegistryDocument,
}


class WhatIfRequest(_Model):
    policy: dict[str, Any] | None = Field(
        default=None,
        description="A proposed precedence policy document (`llmbilling policy show` prints"
        " today's); null keeps today's policy. Beyond its schema a policy must end with"
        " `deployment_default`, name each rung once, and put `org_default` before"
        " `derived_provider` for `own_key_wins_over_org_default` (else a 422).",
    )
    registry: dict[str, Any] | None = Field(
        default=None,
        description="A proposed provider registry document; null keeps today's registry."
        " Beyond its schema: unique provider and runtime ids, exactly one `platform: true`"
        " provider, runtimes listing declared providers once each, patterns expressible as"
        " exact ids and prefixes (else a 422).",
    )
    org_id: UUID | None = Field(
        default=None, description="Only this org's workspaces; null = the whole fleet (admin)."
    )


def whatif_request_schema() -> dict[str, Any]:
    """The JSON Schema of a :class:`WhatIfRequest` body, each proposed document referring to
    its model's schema among the components (:func:`proposal_document_schemas`)."""
    schema = WhatIfRequest.model_json_schema()
    for field, document in _PROPOSED_DOCUMENTS.items():
        declared = dict(schema["properties"][field])
        reference = {"$ref": COMPONENT_REF.format(model=document.__name__)}
        declared["anyOf"] = [reference, {"type": "null"}]
        schema["properties"][field] = declared
    return schema


def proposal_document_schemas() -> dict[str, Any]:
    """The OpenAPI components of the documents a what-if proposes, generated from the models
    that validate them (:class:`PolicyDocument`, :class:`RegistryDocument`)."""
    _, schemas = models_json_schema(
        [(document, "validation") for document in _PROPOSED_DOCUMENTS.values()],
        ref_template=COMPONENT_REF,
    )
    return dict(schemas.get("$defs", {}))


class _Transition(_Model):
    model_config = ConfigDict(frozen=True, extra="forbid", populate_by_name=True)

    from_: str = Field(alias="from")
    to: str
    count: int


class ModeTransition(_Transition):
    samples: list[str] = Field(description="The first workspace ids seen with this change.")


class OrgTransitions(_Model):
    org_id: str
    workspaces: int = Field(description="The org's workspaces decided.")
    changed: int = Field(description="The org's workspaces whose mode or source would change.")
    mode_transitions: list[_Transition]
    dangers: dict[str, int] = Field(description="Workspaces per danger class (every class).")


class ConfigurationVersions(_Model):
    policy: str
    registry: str | None


class DocumentDiff(_Model):
    current: str = Field(description="Today's document as YAML (empty: no registry loaded).")
    proposed: str = Field(description="The proposed document as YAML.")
    diff: str = Field(description="Unified diff current → proposed; empty when equal.")


class WhatIfProposal(_Model):
    policy: DocumentDiff
    registry: DocumentDiff


class WhatIfReport(_Model):
    current: ConfigurationVersions
    proposed: ConfigurationVersions
    total: int
    changed: int = Field(description="Workspaces whose mode or source would change.")
    dangerous: bool = Field(description="True when any danger class is non-empty.")
    dangers: dict[str, int]
    danger_samples: dict[str, list[str]]
    mode_transitions: list[ModeTransition]
    source_transitions: list[_Transition]
    per_org: list[OrgTransitions]
    proposal: WhatIfProposal = Field(description="What was compared, as YAML, and the diffs.")


class WhatIfJobSummary(_Model):
    id: UUID
    state: str = Field(description="queued, running, succeeded or failed.")
    org_id: UUID | None
    done: int = Field(description="Workspaces decided so far.")
    total: int | None = Field(description="Workspaces to decide; null until the run starts.")
    created_at: datetime
    finished_at: datetime | None
    error: DecisionErrorModel | None
    requested_by: str = Field(description="The actor that started it, as the audit log names it.")
    attempts: int = Field(
        description="Runs begun: more than one when a replica running it was lost and another"
        " ran it again from the start."
    )


class WhatIfJob(WhatIfJobSummary):
    report: WhatIfReport | None = Field(description="Set once the job has succeeded.")


class WhatIfJobList(_Model):
    jobs: list[WhatIfJobSummary] = Field(
        description="The jobs the token may read, newest first; jobs are stored, so every"
        " replica lists every replica's."
    )


# --- the org listing ---------------------------------------------------------------------------


class StoredOrgDefault(_Model):
    raw: str | None = Field(description="As stored; null when the org has no default.")
    recognized: BillingMode | None = Field(description="What the raw text normalizes to.")


class OrgListItem(_Model):
    id: UUID
    name: str
    llm_billing_mode_default: StoredOrgDefault
    workspace_count: int = Field(description="How many workspaces the org has.")


class OrgPage(_Model):
    items: list[OrgListItem] = Field(description="By name, then id.")
    next_cursor: str | None = Field(
        description="Pass as `after` for the next page; null on the last page."
    )
