"""The reliability report: fault, injection and load suites in one command.

    .venv/bin/python benchmarks/reliability.py                 # every suite, full size
    .venv/bin/python benchmarks/reliability.py --quick         # CI-sized
    .venv/bin/python benchmarks/reliability.py --suites faults,injection

Each suite is a module ``benchmarks/reliability_<name>.py`` whose
``run(workdir, quick)`` works on loopback only, in its own folder, bounded in
time, and returns {suite, cases, survived, data_lost, worst_latency_s,
headline, failures, details}. This script runs them one after another (never
two at once: they are timed) and writes benchmarks/results/reliability.json
and reliability.md.
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import sys
import tempfile
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SUITES = ("faults", "injection", "load")


def run_suite(name: str, workdir: Path, quick: bool) -> dict:
    """One suite's result; a suite that crashes is reported as a failure, not lost."""
    started = time.perf_counter()
    try:
        module = importlib.import_module(f"benchmarks.reliability_{name}")
        result = module.run(workdir, quick=quick)
    except Exception:  # the report must still be written, naming what broke
        result = {
            "suite": name, "cases": 0, "survived": 0, "data_lost": 0, "worst_latency_s": None,
            "headline": {}, "failures": [f"the suite crashed:\n{traceback.format_exc()}"], "details": [],
        }
    result["seconds"] = round(time.perf_counter() - started, 1)
    return result


def markdown(report: dict) -> str:
    lines = [
        f"# Reliability report ({report['mode']})",
        "",
        f"{report['when']} on {report['machine']}; command: `{report['command']}`",
        "",
        "| suite | cases | survived | data lost | worst latency (s) | run time (s) |",
        "|---|---|---|---|---|---|",
    ]
    for s in report["suites"]:
        worst = "" if s["worst_latency_s"] is None else f"{s['worst_latency_s']:.1f}"
        lines.append(f"| {s['suite']} | {s['cases']} | {s['survived']} | {s['data_lost']} | {worst} | {s['seconds']} |")
    lines += ["", "## Figures the issue asks for", ""]
    for s in report["suites"]:
        for label, value in s["headline"].items():
            lines.append(f"- {s['suite']}: {label}: **{value}**")
    failures = [(s["suite"], f) for s in report["suites"] for f in s["failures"]]
    lines += ["", "## Failures", ""]
    lines += [f"- {suite}: {text}" for suite, text in failures] or ["none"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--suites", default=",".join(SUITES), help=f"comma-separated, of {', '.join(SUITES)}")
    parser.add_argument("--quick", action="store_true", help="the CI-sized variant of every suite")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.suites.split(",") if n.strip()]
    unknown = [n for n in names if n not in SUITES]
    if unknown:
        parser.error(f"unknown suite(s): {', '.join(unknown)}")

    sys.path.insert(0, str(ROOT))  # run as a script: the suites are imported as benchmarks.*
    report = {
        "mode": "quick" if args.quick else "full",
        "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {platform.python_version()}",
        "command": "python benchmarks/reliability.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        "suites": [],
    }
    for name in names:
        print(f"== {name}", flush=True)
        with tempfile.TemporaryDirectory(prefix=f"reliability-{name}-") as workdir:
            result = run_suite(name, Path(workdir), args.quick)
        report["suites"].append(result)
        print(json.dumps({k: v for k, v in result.items() if k != "details"}, indent=2), flush=True)

    args.out.mkdir(parents=True, exist_ok=True)
    stem = "reliability" if not args.quick else "reliability-quick"
    (args.out / f"{stem}.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / f"{stem}.md").write_text(markdown(report))
    print(f"wrote {args.out / stem}.json and .md")
    return 1 if any(s["failures"] or s["data_lost"] for s in report["suites"]) else 0


if __name__ == "__main__":
    sys.exit(main())
