"""Per-decision cost of ``resolve_billing_mode`` against an OpenFeature in-memory flag evaluation.

Both run in this process, interleaved round by round over the same fleet-like inputs, and the
median round is reported. Three figures for us:

* fleet mix — 20,000 workspaces drawn from a realistic mix of org defaults, overrides, runtimes,
  models and credentials (a few hundred distinct inputs, as in a real fleet): the memoized path;
* cold — every input distinct and the memo cleared first (prepared registry included): the
  full chain every time;
* batch — decisions per second through ``llmbilling resolve --batch`` in a subprocess (JSON in,
  JSON out, process start-up included).

OpenFeature evaluates a static in-memory flag with an evaluation context carrying the same
attributes, asking for details (value, variant, reason) as we return a record: the cheapest
thing OpenFeature does, so the comparison favours it.

``cold_vs_openfeature: X.XX`` is OpenFeature time over our cold time (above 1: a decision never
seen before still costs less than one OpenFeature evaluation). The last line is
``speedup_vs_openfeature: X.X`` (OpenFeature time over our fleet-mix time).
Run: ``.venv/bin/python bench/resolve.py``
"""

from __future__ import annotations

import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from openfeature import api
from openfeature.evaluation_context import EvaluationContext
from openfeature.provider.in_memory_provider import InMemoryFlag, InMemoryProvider

from llmbilling import ResolutionInput, built_in_registry, resolve_billing_mode
from llmbilling.core.resolve import clear_resolution_memo

FLEET_SIZE = 20_000
COLD_SIZE = 20_000
ROUNDS = 7
BATCH_LINES = 200_000

RUNTIMES = ["claude-code", "codex", "hermes", "openclaw", "langgraph", "crewai"]
MODELS = [
    "kimi-for-coding",
    "gpt-5.5",
    "claude-opus-4-7",
    "opus",
    "sonnet",
    "gemini-2.5-pro",
    "MiniMax-M2",
    "deepseek-chat",
    "platform/claude-opus-4-7",
    "openai/gpt-5.4",
    "my-local-llm",
    None,
]
ORG_DEFAULTS = [None, None, "platform_managed", "byok", " BYOK ", "byokk"]
OVERRIDES = [None] * 8 + ["byok", "platform_managed", "disabled"]
CREDENTIALS = [(), (), ("ANTHROPIC_API_KEY",), ("CLAUDE_CODE_OAUTH_TOKEN",), ("OPENAI_API_KEY",)]


def fleet(size: int, rng: random.Random) -> list[ResolutionInput]:
    return [
        ResolutionInput(
            workspace_id=f"ws-{index:07d}",
            override=rng.choice(OVERRIDES),
            org_default=rng.choice(ORG_DEFAULTS),
            runtime=rng.choice(RUNTIMES),
            model=rng.choice(MODELS),
            auth_env=frozenset(rng.choice(CREDENTIALS)),
            proxy_configured=True,
        )
        for index in range(size)
    ]


def cold_inputs(size: int) -> list[ResolutionInput]:
    return [
        ResolutionInput(workspace_id=f"ws-{i}", runtime="codex", model=f"gpt-bench-{i}")
        for i in range(size)
    ]


def per_call_us(run: Callable[[], object], calls: int) -> float:
    start = time.perf_counter()
    run()
    return (time.perf_counter() - start) / calls * 1e6


def main() -> None:
    rng = random.Random(2608)
    registry = built_in_registry()
    workspaces = fleet(FLEET_SIZE, rng)
    distinct = len(
        {(w.override, w.org_default, w.runtime, w.model, w.auth_env) for w in workspaces}
    )
    cold = cold_inputs(COLD_SIZE)

    api.set_provider(
        InMemoryProvider(
            {
                "llm-billing-mode": InMemoryFlag(
                    "platform_managed",
                    {
                        "platform_managed": "platform_managed",
                        "byok": "byok",
                        "disabled": "disabled",
                    },
                )
            }
        )
    )
    client = api.get_client()
    contexts = [
        EvaluationContext(
            targeting_key=w.workspace_id,
            attributes={
                "runtime": w.runtime or "",
                "model": w.model or "",
                "org_default": w.org_default or "",
            },
        )
        for w in workspaces
    ]

    def ours() -> None:
        for inputs in workspaces:
            resolve_billing_mode(inputs, registry)

    def ours_cold() -> None:
        clear_resolution_memo()
        for inputs in cold:
            resolve_billing_mode(inputs, registry)

    def openfeature() -> None:
        for context in contexts:
            client.get_string_details("llm-billing-mode", "platform_managed", context)

    warm_rounds, cold_rounds, feature_rounds = [], [], []
    for _ in range(ROUNDS):
        cold_rounds.append(per_call_us(ours_cold, COLD_SIZE))
        ours()  # re-warm the memo, as a long-running service would have it
        warm_rounds.append(per_call_us(ours, FLEET_SIZE))
        feature_rounds.append(per_call_us(openfeature, FLEET_SIZE))
    warm = statistics.median(warm_rounds)
    cold_us = statistics.median(cold_rounds)
    feature = statistics.median(feature_rounds)

    print(f"fleet: {FLEET_SIZE} workspaces, {distinct} distinct inputs; {ROUNDS} rounds, medians")
    print(f"resolve_billing_mode fleet mix:    {warm:7.3f} us/decision")
    print(f"resolve_billing_mode cold:         {cold_us:7.3f} us/decision")
    print(f"openfeature in-memory details:     {feature:7.3f} us/evaluation")
    print(f"speedup cold vs openfeature:       {feature / cold_us:7.2f}x")
    print(f"cold_vs_openfeature: {feature / cold_us:.2f}")
    print(
        f"batch throughput:                  {batch_throughput(workspaces):,.0f} decisions/s"
        f" ({BATCH_LINES} lines through `llmbilling resolve --batch`, start-up included)"
    )
    print(f"speedup_vs_openfeature: {feature / warm:.1f}")


def batch_throughput(workspaces: list[ResolutionInput]) -> float:
    cli = Path(sys.executable).with_name("llmbilling")
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as handle:
        for index in range(BATCH_LINES):
            w = workspaces[index % len(workspaces)]
            handle.write(
                json.dumps(
                    {
                        "workspace_id": f"ws-{index}",
                        "override": w.override,
                        "org_default": w.org_default,
                        "runtime": w.runtime,
                        "model": w.model,
                        "auth_env": sorted(w.auth_env),
                    }
                )
                + "\n"
            )
        path = handle.name
    try:
        start = time.perf_counter()
        subprocess.run(
            [str(cli), "resolve", "--batch", path], check=True, stdout=subprocess.DEVNULL
        )
        elapsed = time.perf_counter() - start
    finally:
        Path(path).unlink()
    return BATCH_LINES / elapsed


if __name__ == "__main__":
    main()
