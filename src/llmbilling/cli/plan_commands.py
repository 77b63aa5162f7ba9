"""``--preview`` on the decision-input writes, and ``llmbilling plan show|apply|approve``.

A write given ``--preview`` writes no decision input: it stores a plan (the change's preview,
bound to the versions of everything it read; audited ``plan.proposed``), prints the impact and
the plan id, and exits :data:`DANGER_EXIT_CODE` when the change would create danger-class
workspaces (as ``whatif`` does). ``plan apply PLAN_ID`` then commits exactly that change, or is
refused (``PLAN_STALE`` naming what moved, ``PLAN_EXPIRED``, ``PLAN_NEEDS_APPROVAL``: the
conflict exit of :data:`llmbilling.cli.app.EXIT_CODES`).

Without ``--preview`` the writes are direct; a deployment that guards dangerous writes refuses
one creating danger-class workspaces unless each class is named with ``--acknowledge``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import typer

from llmbilling.cli.store_options import (
    ActorOption,
    DatabaseUrlOption,
    JsonOption,
    audit_context,
    console,
    print_json,
    service_context,
)
from llmbilling.cli.tables import print_rows
from llmbilling.cli.whatif_command import DANGER_EXIT_CODE
from llmbilling.core.changes import AnyChange
from llmbilling.errors import InvalidInputError
from llmbilling.service import plans
from llmbilling.service.context import ServiceContext
from llmbilling.service.plans import Plan
from llmbilling.store.engine import Connection

# Rows of moved workspaces a terminal shows; the plan keeps plans.DEFAULT_IMPACT_LIMIT.
SHOWN_IMPACTS = 20
SHOWN_SAMPLES = 3

PreviewOption = Annotated[
    bool,
    typer.Option(
        "--preview",
        help="Write nothing: store a plan, print its impact and id (apply it with"
        " `llmbilling plan apply ID`); exits 10 when it would create danger classes.",
    ),
]
ReasonOption = Annotated[
    str | None,
    typer.Option("--reason", help="Why (at most 500 printable characters): kept in the audit log."),
]
AcknowledgeOption = Annotated[
    list[str] | None,
    typer.Option(
        "--acknowledge",
        help="A danger class this write may create (repeatable), when the deployment guards"
        f" dangerous writes: {', '.join(plans.DANGER_VALUES)}.",
    ),
]

plan_app = typer.Typer(
    help="Change plans: show, approve and apply what a --preview stored.", no_args_is_help=True
)
PlanIdArgument = Annotated[str, typer.Argument(help="Plan id (UUID), as --preview printed it.")]


def guard_of(
    context: ServiceContext, change: AnyChange, acknowledge: list[str] | None
) -> Callable[[Connection], None] | None:
    """The deployment's check of a direct write (None when it guards nothing)."""
    return plans.write_guard(context, change, plans.parse_acknowledged(acknowledge or []))


def propose_and_print(
    context: ServiceContext,
    change: AnyChange,
    *,
    actor: str | None,
    as_json: bool,
    org_id: Any = None,
) -> None:
    """Store ``change``'s plan and print it (``--json``: the plan document); exits
    :data:`DANGER_EXIT_CODE` when its preview has danger."""
    plan = plans.propose_plan(context, change, org_id=org_id, audit_context=audit_context(actor))
    if as_json:
        print_json(plan.to_dict())
    else:
        print_plan(plan)
    if plan.dangerous:
        raise typer.Exit(DANGER_EXIT_CODE)


def print_plan(plan: Plan) -> None:
    """A plan for people: its change and impact (:func:`print_impact`), then how to apply it."""
    console.print(
        f"plan {plan.id} ({plan.status}; expires {plan.expires_at.isoformat()})",
        highlight=False,
        soft_wrap=True,
    )
    print_impact(plan.preview)
    if plan.status in ("proposed", "approved"):
        if plan.needs_approval:
            _say(f"needs approval by another admin: llmbilling plan approve {plan.id}")
        _say(f"apply: llmbilling plan apply {plan.id}")


def _say(line: str) -> None:
    console.print(line, highlight=False, soft_wrap=True)


def print_impact(preview: dict[str, Any]) -> None:
    """A preview document for people: the change, counts, danger classes with samples,
    transitions that move, and the first moved workspaces before and after (bounded)."""
    _say(f"change: {_change_words(preview['change'])}")
    _say(
        f"{preview['total']:,} workspaces in scope ({preview['scope']['kind']});"
        f" {preview['changed']:,} would change mode or source"
    )
    danger_rows = [
        [danger, f"{count:,}", ", ".join(preview["danger_samples"][danger][:SHOWN_SAMPLES])]
        for danger, count in preview["dangers"].items()
        if count
    ]
    if danger_rows:
        print_rows(
            ["danger class", "workspaces", "sample"], danger_rows, console=console, title="dangers"
        )
    else:
        _say("no danger class")
    for key, title in (
        ("mode_transitions", "mode transitions"),
        ("source_transitions", "source transitions"),
        ("provisioning_transitions", "provisioning transitions"),
    ):
        moved = [
            [row["from"], row["to"], f"{row['count']:,}"]
            for row in preview[key]
            if row["from"] != row["to"]
        ]
        if moved:
            print_rows(["from", "to", "workspaces"], moved, console=console, title=title)
    impacts = preview["impacts"]
    if impacts:
        rows = [
            [
                impact["workspace_id"],
                _verdict_words(impact["before"]),
                _verdict_words(impact["after"]),
                ", ".join(impact["dangers"]) or "-",
            ]
            for impact in impacts[:SHOWN_IMPACTS]
        ]
        more = len(impacts) > SHOWN_IMPACTS or not preview["impacts_complete"]
        title = "affected workspaces" + (f" (the first {len(rows)})" if more else "")
        print_rows(["workspace", "before", "after", "dangers"], rows, console=console, title=title)


def _verdict_words(verdict: dict[str, str]) -> str:
    return f"{verdict['mode']} ({verdict['source']}; {verdict['provisioning']})"


def _change_words(change: dict[str, Any]) -> str:
    kind = change["kind"]
    if kind == "workspace_override":
        what = "clear" if change["mode"] is None else f"set {change['mode']}"
        return f"workspace {change['workspace_id']} override: {what}"
    if kind == "org_default":
        what = "clear" if change["mode"] is None else f"set {change['mode']!r}"
        return f"org {change['org_id']} default: {what}"
    if kind == "secret":
        what = "set" if change["present"] else "delete"
        return f"{change['scope']} {change['owner_id']} secret {change['name']}: {what}"
    if kind == "deployment":
        parts = []
        if change.get("proxy_configured") is not None:
            parts.append(f"proxy configured: {change['proxy_configured']}")
        if "org_default" in change:
            parts.append(f"env org default: {change['org_default']!r}")
        return "deployment " + ", ".join(parts)
    return (
        f"configuration: policy {change['policy_version']}, registry {change['registry_version']}"
    )


@plan_app.command("show")
def plan_show(
    plan_id: PlanIdArgument, as_json: JsonOption = False, database_url: DatabaseUrlOption = None
) -> None:
    """Show a plan: its change, impact, status and who proposed, approved and applied it."""
    with service_context(database_url) as context:
        plan = plans.get_plan(context, plan_id)
    if as_json:
        print_json(plan.to_dict())
        return
    print_plan(plan)
    for who, when, what in (
        (plan.proposed_by, plan.created_at, "proposed"),
        (plan.approved_by, plan.approved_at, "approved"),
        (plan.applied_by, plan.applied_at, "applied"),
    ):
        if who is not None and when is not None:
            _say(f"{what} by {who} at {when.isoformat()}")


@plan_app.command("approve")
def plan_approve(
    plan_id: PlanIdArgument,
    as_json: JsonOption = False,
    actor: ActorOption = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Approve a plan as a second admin (an actor other than its proposer)."""
    with service_context(database_url) as context:
        plan = plans.approve_plan(context, plan_id, audit_context=audit_context(actor))
    if as_json:
        print_json(plan.to_dict())
    else:
        _say(f"plan {plan.id} approved by {plan.approved_by}")


@plan_app.command("apply")
def plan_apply(
    plan_id: PlanIdArgument,
    acknowledge: AcknowledgeOption = None,
    reason: ReasonOption = None,
    as_json: JsonOption = False,
    actor: ActorOption = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Commit exactly the plan's change, or refuse (exit 1) naming what moved since its
    preview, or the danger classes not acknowledged when the deployment guards dangerous
    writes. A plan that sets a secret reads the value from stdin (or a hidden prompt)."""
    acknowledged = plans.parse_acknowledged(acknowledge or [])
    with service_context(database_url) as context:
        found = plans.get_plan(context, plan_id)
        value = None
        change = found.change
        if change["kind"] == "secret" and change["present"]:
            # Imported here: secrets_commands imports this module for --preview.
            from llmbilling.cli.secrets_commands import read_value

            value = read_value(change["name"])
        plan = plans.apply_plan(
            context,
            found.id,
            secret_value=value,
            reason=reason,
            acknowledged=acknowledged,
            audit_context=audit_context(actor),
        )
    if as_json:
        print_json(plan.to_dict())
    else:
        _say(f"plan {plan.id} {plan.status}: {_change_words(plan.change)}")


def refuse_preview_with_acknowledge(preview: bool, acknowledge: list[str] | None) -> None:
    """``--acknowledge`` is for a write; a preview writes nothing to acknowledge."""
    if preview and acknowledge:
        raise InvalidInputError(
            "--acknowledge", "a --preview writes nothing: acknowledge at `plan apply`"
        )
