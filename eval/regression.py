"""The regression guard: compare a run's summary with a stored one."""

from __future__ import annotations

import json
from pathlib import Path

from eval.report import LOWER_IS_BETTER

# Timings vary with the machine's load; they are reported, not guarded.
UNGUARDED_SUFFIXES = ("_ms_p50", "_ms_p95")
UNGUARDED = {"questions", "errors", "refused"}


def regressions(summary: dict, baseline: dict, tolerance: float) -> list[str]:
    """Metrics of the product (overall and per type) that fell more than tolerance below the baseline."""
    product = summary["product"]
    if baseline.get("product") != product or baseline.get("mode") != summary["mode"]:
        raise ValueError(
            f"baseline is a {baseline.get('mode')} run of {baseline.get('product')!r}; "
            f"this is a {summary['mode']} run of {product!r}"
        )
    ours, theirs = summary["systems"][product], baseline["systems"][product]
    found = []
    for group, metrics in theirs.items():
        for name, before in metrics.items():
            if name in UNGUARDED or name.endswith(UNGUARDED_SUFFIXES):
                continue
            now = ours.get(group, {}).get(name)
            if now is None:
                continue
            drop = (now - before) if name in LOWER_IS_BETTER else (before - now)
            if drop > tolerance:
                found.append(f"{group}/{name}: {before:.3f} -> {now:.3f}")
    return found


def check(summary: dict, baseline_path: Path, tolerance: float) -> list[str]:
    return regressions(summary, json.loads(Path(baseline_path).read_text()), tolerance)
