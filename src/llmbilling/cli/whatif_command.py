"""``llmbilling whatif``: every stored workspace decided under a proposed policy or registry.

Exits non-zero (:data:`DANGER_EXIT_CODE`) when any danger class is non-empty — a workspace
that would newly fail its provision, lose LLM access or start paying (for the platform or the
customer) — so it can gate a deploy in CI.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from llmbilling.cli.store_options import (
    DatabaseUrlOption,
    org_option,
    print_json,
    service_context,
)
from llmbilling.config.policy import load_policy
from llmbilling.config.registry import load_registry
from llmbilling.core.whatif import WhatIfReport
from llmbilling.errors import InvalidInputError
from llmbilling.service.whatif import (
    count_workspaces,
    current_configuration,
    proposed_configuration,
    run_whatif,
)
from llmbilling.service.whatif_report import proposal_of, report_document, write_report

DANGER_EXIT_CODE = 10


def whatif(
    policy: Annotated[Path | None, typer.Option(help="Proposed precedence policy YAML.")] = None,
    registry: Annotated[Path | None, typer.Option(help="Proposed provider registry YAML.")] = None,
    org: Annotated[
        str | None, typer.Option(help="Only this organization (id or unique name).")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Write report.json, transitions.csv and report.html here.")
    ] = None,
    samples: Annotated[int, typer.Option(help="Workspace ids kept per transition.")] = 20,
    proxy_configured: Annotated[
        bool | None,
        typer.Option(
            "--proxy-configured/--no-proxy-configured",
            help="A deployment change instead: the metering proxy configured, or not.",
            show_default=False,
        ),
    ] = None,
    env_org_default: Annotated[
        str | None,
        typer.Option(
            "--env-org-default",
            help="A deployment change instead: MOLECULE_LLM_BILLING_MODE set to MODE"
            " ('' unsets it).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Preview every workspace's decision under a proposed policy and/or registry."""
    if proxy_configured is not None or env_org_default is not None:
        if policy is not None or registry is not None or out is not None:
            raise InvalidInputError(
                "--proxy-configured",
                "a deployment change is previewed alone: without --policy, --registry, --out",
            )
        _preview_deployment(proxy_configured, env_org_default, org, as_json, database_url)
        return
    if policy is None and registry is None:
        raise InvalidInputError("--policy", "give --policy, --registry or both")
    if samples < 0:
        raise InvalidInputError("--samples", "must be 0 or more")
    proposed_policy = None if policy is None else load_policy(policy)
    proposed_registry = None if registry is None else load_registry(registry)
    console = Console(stderr=True)
    with service_context(database_url) as context:
        proposed = proposed_configuration(context, proposed_policy, proposed_registry)
        org_id = None if org is None else org_option(context, org)
        total = count_workspaces(context, org_id)
        with Progress(
            TextColumn("deciding"),
            BarColumn(),
            MofNCompleteColumn(),
            TaskProgressColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=console,
            disable=not console.is_terminal,
        ) as progress:
            task = progress.add_task("whatif", total=total, rate="")

            def advance(done: int) -> None:
                elapsed = progress.tasks[task].elapsed or 0.0
                rate = f"{done / elapsed:,.0f}/s" if elapsed else ""
                progress.update(task, completed=done, rate=rate)

            report = run_whatif(
                context, proposed, org_id=org_id, samples_per_class=samples, on_progress=advance
            )
        proposal = proposal_of(current_configuration(context), proposed)
    if out is not None:
        try:
            written = write_report(report, proposal, out)
        except OSError as error:
            raise InvalidInputError(
                "--out", f"cannot write the report into {str(out)!r}: {error.strerror}"
            ) from None
        for path in written:
            console.print(f"wrote {path}", highlight=False)
    if as_json:
        print_json(report_document(report, proposal))
    else:
        _summarize(report, Console())
    if report.has_danger:
        raise typer.Exit(DANGER_EXIT_CODE)


def _preview_deployment(
    proxy_configured: bool | None,
    env_org_default: str | None,
    org: str | None,
    as_json: bool,
    database_url: str | None,
) -> None:
    """A deployment setting change previewed as the plans preview it (nothing stored)."""
    # Imported here: only this path needs the plans' printer.
    from llmbilling.cli.plan_commands import print_impact
    from llmbilling.service import plans

    if env_org_default is None:
        change = plans.deployment_change(proxy_configured=proxy_configured)
    else:
        change = plans.deployment_change(
            proxy_configured=proxy_configured, org_default=env_org_default or None
        )
    with service_context(database_url) as context:
        org_id = None if org is None else org_option(context, org)
        preview = plans.preview_change(context, change, org_id=org_id)
    document = preview.to_document()
    if as_json:
        print_json(document)
    else:
        print_impact(document)
    if preview.has_danger:
        raise typer.Exit(DANGER_EXIT_CODE)


def _summarize(report: WhatIfReport, console: Console) -> None:
    console.print(
        f"{report.total:,} workspaces; {report.changed:,} would change mode or source",
        highlight=False,
    )
    dangers = Table(title="danger classes", title_justify="left")
    dangers.add_column("class")
    dangers.add_column("workspaces", justify="right")
    dangers.add_column("sample")
    for danger, count in report.dangers.items():
        style = "bold red" if count else "dim"
        sample = ", ".join(report.danger_samples.get(danger, ())[:3])
        dangers.add_row(f"[{style}]{danger.value}[/]", f"{count:,}", sample)
    console.print(dangers)
    modes = Table(title="mode transitions", title_justify="left")
    modes.add_column("from")
    modes.add_column("to")
    modes.add_column("workspaces", justify="right")
    for (old, new), count in sorted(report.mode_transitions.items(), key=lambda i: -i[1]):
        style = "bold" if old != new else "dim"
        modes.add_row(old, f"[{style}]{new}[/]", f"{count:,}")
    console.print(modes)
