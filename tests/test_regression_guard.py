import json
import subprocess
import sys

import pytest

from eval.regression import regressions
from tests.conftest import write_jsonl


def summary(recall, outside=0.0, latency=20.0, product="paper-rag", mode="answer"):
    return {
        "product": product,
        "mode": mode,
        "systems": {
            product: {
                "overall": {"recall@5": recall, "cites_outside_retrieved": outside, "total_ms_p50": latency},
                "single": {"recall@5": recall},
            }
        },
    }


def test_a_real_drop_is_reported_and_noise_is_not():
    base = summary(0.90)
    assert regressions(summary(0.89, latency=90.0), base, tolerance=0.02) == []
    fallen = regressions(summary(0.80), base, tolerance=0.02)
    assert fallen == ["overall/recall@5: 0.900 -> 0.800", "single/recall@5: 0.900 -> 0.800"]


def test_lower_is_better_metrics_fail_when_they_rise():
    assert regressions(summary(0.9, outside=0.10), summary(0.9, outside=0.0), 0.02) == [
        "overall/cites_outside_retrieved: 0.000 -> 0.100"
    ]


def test_a_baseline_of_another_kind_is_refused():
    with pytest.raises(ValueError, match="baseline is a retrieval run"):
        regressions(summary(0.9), summary(0.9, mode="retrieval"), 0.02)


def test_rag_eval_check_exits_non_zero_on_a_drop(tmp_path, small_corpus):
    corpus = write_jsonl(tmp_path / "c.jsonl", small_corpus)
    env_args = ["--data-dir", str(tmp_path / "data")]
    run = lambda *a: subprocess.run([sys.executable, "-m", "cli", *a], capture_output=True, text=True, timeout=600)
    assert run("ingest", "--quiet", str(corpus), *env_args).returncode == 0
    questions = tmp_path / "q.jsonl"
    questions.write_text(
        "".join(
            json.dumps({"id": str(i), "type": "single", "question": p.abstract[:160], "gold_titles": [p.title]}) + "\n"
            for i, p in enumerate(small_corpus[:4])
        )
    )
    first = run("eval", "--questions", str(questions), "--out", str(tmp_path / "a"), *env_args)
    assert first.returncode == 0, first.stderr
    stored = json.loads((tmp_path / "a" / "summary.json").read_text())
    same = run("eval", "--questions", str(questions), "--out", str(tmp_path / "b"), "--check", str(tmp_path / "a" / "summary.json"), *env_args)
    assert same.returncode == 0 and "no metric fell" in same.stdout

    stored["systems"]["paper-rag"]["overall"]["mrr"] = 1.5  # a baseline the run cannot reach
    (tmp_path / "better.json").write_text(json.dumps(stored))
    worse = run("eval", "--questions", str(questions), "--out", str(tmp_path / "c"), "--check", str(tmp_path / "better.json"), *env_args)
    assert worse.returncode == 3
    assert "overall/mrr: 1.500 ->" in worse.stderr
