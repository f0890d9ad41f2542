"""The scale benchmark's 1k-paper run, as a smoke test: it runs end to end and
reports every figure (the full 1k/10k/100k run is a benchmark, not a test)."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def test_scale_benchmark_runs_on_1k_papers(tmp_path):
    out = tmp_path / "scale.json"
    run = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "scale.py"), "--sizes", "1000", "--modes", "embedded",
         "--queries", "20", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True,
    )
    assert run.returncode == 0, run.stderr[-3000:]
    (row,) = json.loads(out.read_text())["rows"]
    assert row["papers"] == 1000 and row["chunks"] >= 1000
    for search in ("dense", "bm25", "hybrid"):
        assert 0 < row[f"{search}_p50_ms"] <= row[f"{search}_p95_ms"]
    # re-ingest costs what changed, not what is stored
    assert row["reingest_one_changed_s"] < row["ingest_s"] / 5
    assert row["reingest_unchanged_s"] < row["ingest_s"] / 5
    assert row["startup_s"] > 0 and row["peak_rss_mb"] > 0 and row["disk_mb"] > 0
    assert out.with_suffix(".png").stat().st_size > 0
