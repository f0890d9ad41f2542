import json

import pytest

from rag.corpus import load_corpus, read_corpus
from rag.errors import CorpusError
from rag.paper import Paper, paper_id_for
from rag.settings import BUNDLED_CORPUS

CHROME = "Get trending papers in your email inbox once a day!\nGet trending papers in your email inbox!\n"


def test_bundled_corpus_parses_to_248_clean_papers():
    papers = load_corpus([BUNDLED_CORPUS])
    assert len(papers) == 248
    assert papers[0].title == "Key-value memory in the brain"
    assert not any(p.title.startswith(("Subscribe", "Get trending")) for p in papers)
    assert len({p.id for p in papers}) == 248
    assert min(len(p.abstract) for p in papers) >= 455


def test_page_dump_strips_chrome_and_glued_subscribe(tmp_path):
    path = tmp_path / "c.txt"
    path.write_text(CHROME + "SubscribeA Title\nAn abstract.\nSecond Title\nSecond abstract.\n")
    papers = load_corpus([path])
    assert [p.title for p in papers] == ["A Title", "Second Title"]
    assert papers[1].abstract == "Second abstract."


def test_ids_are_stable_across_abstract_edits():
    a = Paper(title="Deep  Nets", abstract="one")
    b = Paper(title="deep nets", abstract="two")
    assert a.id == b.id == paper_id_for("Deep Nets")
    assert a.content_hash != b.content_hash


@pytest.mark.parametrize(
    ("content", "line", "problem"),
    [
        (CHROME + "T1\nA1\nT2\n", 5, "odd number"),
        (CHROME + "T1\nA1\n\nA2\n", 5, "empty title"),
        (CHROME + "T1\n   \nT2\nA2\n", 4, "empty abstract"),
        (CHROME + "T1\n" + "x" * 500 + "\n" + "y" * 500 + "\nT3\n", 5, "expected a title"),
    ],
    ids=["odd-lines", "empty-title", "empty-abstract", "shifted-pairs"],
)
def test_malformed_page_dump_names_file_and_line(tmp_path, content, line, problem):
    path = tmp_path / "bad.txt"
    path.write_text(content)
    with pytest.raises(CorpusError) as caught:
        load_corpus([path])
    assert caught.value.line == line
    assert str(caught.value).startswith(f"{path}:{line}: ")
    assert problem in str(caught.value)


def test_non_utf8_bytes_name_the_line(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes(CHROME.encode() + b"T1\nA1\nCaf\xe9 title\nA2\n")
    with pytest.raises(CorpusError, match=r"latin1.txt:5: not valid UTF-8"):
        load_corpus([path])


def test_jsonl_with_optional_fields(tmp_path):
    path = tmp_path / "c.jsonl"
    rows = [
        {"title": "A", "abstract": "Alpha.", "authors": ["X", "Y"], "year": "2021", "url": "http://a", "id": "a1"},
        {"title": "B", "abstract": "Beta."},
    ]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    a, b = load_corpus([path])
    assert (a.id, a.authors, a.year, a.url) == ("a1", "X, Y", 2021, "http://a")
    assert b.id == paper_id_for("B") and b.year is None


@pytest.mark.parametrize(
    ("line2", "problem"),
    [
        ("{not json", "not valid JSON"),
        ('["B", "x"]', "expected a JSON object"),
        ('{"title": "B", "abstract": "x", "year": "soon"}', "not a whole number"),
        ('{"title": "B", "abstract": "x", "id": "b@1"}', "must not contain"),
    ],
)
def test_malformed_jsonl_names_the_line(tmp_path, line2, problem):
    path = tmp_path / "c.jsonl"
    path.write_text('{"title": "A", "abstract": "Alpha."}\n' + line2 + "\n")
    with pytest.raises(CorpusError, match=rf"c.jsonl:2: .*{problem}"):
        load_corpus([path])


def test_jsonl_records_without_title_or_abstract_are_skipped_with_their_lines(tmp_path):
    path = tmp_path / "c.jsonl"
    rows = [{"title": "A", "abstract": "Alpha."}, {"title": "B"}, {"title": "", "abstract": "x", "id": "c3"}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    load = read_corpus([path])
    assert [p.title for p in load.papers] == ["A"]
    assert [str(entry) for entry in load.skipped] == [f"{path}:2: B has no abstract", f"{path}:3: c3 has no title"]


def test_csv_and_its_errors(tmp_path):
    good = tmp_path / "c.csv"
    good.write_text('title,abstract,year\n"A, with comma","Alpha, beta.",2020\nB,Beta.,\n')
    papers = load_corpus([good])
    assert [p.title for p in papers] == ["A, with comma", "B"] and papers[0].year == 2020

    no_column = tmp_path / "d.csv"
    no_column.write_text("title,summary\nA,x\n")
    with pytest.raises(CorpusError, match=r"d.csv:1: header lacks column\(s\) abstract"):
        load_corpus([no_column])

    empty_abstract = tmp_path / "e.csv"
    empty_abstract.write_text("title,abstract\nA,x\nB,\n")
    load = read_corpus([empty_abstract])
    assert [p.title for p in load.papers] == ["A"]
    assert [str(entry) for entry in load.skipped] == [f"{empty_abstract}:3: B has no abstract"]


def test_duplicate_titles_keep_the_first_and_are_reported(tmp_path, caplog):
    one = tmp_path / "one.jsonl"
    two = tmp_path / "two.csv"
    one.write_text(json.dumps({"title": "Same  Title", "abstract": "First."}) + "\n")
    two.write_text("title,abstract\nsame title,Second.\nOther,Third.\n")
    load = read_corpus([one, two])
    assert [p.abstract for p in load.papers] == ["First.", "Third."]
    [duplicate] = load.skipped
    assert (duplicate.path, duplicate.line, duplicate.reason) == (two, 2, f"duplicate of {one}:1")
    assert [p.abstract for p in load_corpus([one, two])] == ["First.", "Third."]
    assert f"skipped {two}:2: same title duplicate of {one}:1" in caplog.text


def test_missing_file_and_unknown_format(tmp_path):
    with pytest.raises(CorpusError, match="file not found"):
        load_corpus([tmp_path / "nope.txt"])
    odd = tmp_path / "c.pdf"
    odd.write_text("x")
    with pytest.raises(CorpusError, match="unknown corpus format"):
        load_corpus([odd])
