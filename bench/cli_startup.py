"""Start-up time of the ``llmbilling`` console script against the bare interpreter.

Runs, interleaved round by round in one process (so all three see the same machine load),
``python -c pass``, ``llmbilling --help`` and ``llmbilling resolve --help`` as fresh
subprocesses of this venv's interpreter, and reports each one's median wall time. The last
line is ``cli_startup_ratio: X.XX``: the median of ``resolve --help`` over the median of
``python -c pass``.

    .venv/bin/python bench/cli_startup.py [--rounds 15]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

SCRIPT = Path(sys.executable).parent / "llmbilling"
COMMANDS: dict[str, list[str]] = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "llmbilling --help": [str(SCRIPT), "--help"],
    "llmbilling resolve --help": [str(SCRIPT), "resolve", "--help"],
}


def _seconds(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    rounds = parser.parse_args().rounds
    timings: dict[str, list[float]] = {name: [] for name in COMMANDS}
    for command in COMMANDS.values():  # warm the page cache and the bytecode
        _seconds(command)
    for _ in range(rounds):
        for name, command in COMMANDS.items():
            timings[name].append(_seconds(command))
    medians = {name: statistics.median(values) for name, values in timings.items()}
    for name, median in medians.items():
        print(f"{name:28} median {median * 1000:8.1f} ms over {rounds} runs")
    ratio = medians["llmbilling resolve --help"] / medians["python -c pass"]
    print(f"cli_startup_ratio: {ratio:.2f}")


if __name__ == "__main__":
    main()
