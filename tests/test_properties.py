"""Bad input, generated (issue 13, item 4): hypothesis feeds the product garbage
and mutated valid input, and checks what it promises for any input.

1. Corpus readers (.txt, .jsonl ours and arXiv's, .csv, .bib, .ris) raise only
   CorpusError, naming the file and (but for "nothing found") the line, or skip
   entries with a reason; what they load is text the index can store.
2. Chunks fit the embedding model (its real tokenizer counts) and cover the
   abstract: with no overlap, the chunks' characters, white space aside, are the
   abstract's, in order, none lost, none added; with overlap, every chunk is a
   stretch of the abstract, the first starts it and the last ends it.
3. Questions with control characters, lone surrogates, right-to-left text,
   2,000+ characters or only white space get a reply, never an exception:
   through the answer engine (a scripted model), the API (FastAPI's TestClient)
   and the page's handlers. The ones that cannot be searched are refused before
   anything is embedded or generated.
4. A settings file or variable of the wrong type is a SettingsError naming the field.

Real parts: the bundled embedding model and its tokenizer, a real Chroma index of
twelve bundled papers. Only the LLM is scripted (it records what it is asked).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
import tempfile
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, example, given, settings, strategies as st

from api.app import build_api
from rag.chunking import chunk_paper
from rag.corpus import read_corpus
from rag.paper import ID_FORBIDDEN_CHARS, Paper
from rag.readers import CORPUS_SUFFIXES
from rag.errors import CorpusError, SettingsError
from rag.index import PaperIndex
from rag.pipeline import Workspace, open_pipeline
from rag.retrieval import Retriever
from rag.settings import BUNDLED_CORPUS, SECTIONS, Settings, load_settings
from tests.conftest import CountingEmbedder
from tests.test_generation import ScriptedLLM, quoting

pytestmark = pytest.mark.slow

DATA = Path(__file__).parent / "data"
# hypothesis: a few dozen examples per property keeps this file under a minute on 2 cores;
# no example database (the examples that failed once are pinned below with @example). CI
# draws the same examples every run, so a landing never depends on luck; other runs explore.
FEW = settings(
    max_examples=40,
    deadline=None,
    database=None,
    derandomize=bool(os.environ.get("CI")),
    suppress_health_check=[HealthCheck.too_slow],
)
SOME = settings(FEW, max_examples=80)
MANY = settings(FEW, max_examples=200)  # the cheap properties that matter most: chunks, the engine


def _head(path: Path, lines: int) -> str:
    return "".join(path.read_text(encoding="utf-8-sig").splitlines(keepends=True)[:lines])


# Small valid files of each format, which the strategies below mutate.
VALID = {
    ".txt": _head(BUNDLED_CORPUS, 7),
    ".jsonl": _head(DATA / "arxiv-sample.jsonl", 3),
    ".bib": _head(DATA / "zotero.bib", 40),
    ".ris": _head(DATA / "endnote.ris", 40),
    ".csv": 'title,abstract,authors,year,doi\n"A paper","It does things. Well.","A B, C D",2021,10.1/x\n'
    '"Another","Text, with a comma.",,,\n',
}
# Characters that mean something to one of the formats, besides any character at all.
SYNTAX = st.sampled_from(list('{}@",\n\r\\%$~=#-_[]:; TYERAUBIKP0123456789') + ["  - ", "\t", "\x00", "\ufeff"])
TEXT = st.characters(exclude_categories=("Cs",))  # what a UTF-8 file can hold


@st.composite
def mutated(draw, text: str) -> str:
    """The text with a few spans replaced by format syntax or any characters, or lines dropped or doubled."""
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(st.sampled_from(["replace", "drop line", "double line"]))
        lines = text.splitlines(keepends=True)
        if kind != "replace" and lines:
            i = draw(st.integers(0, len(lines) - 1))
            lines[i : i + 1] = [] if kind == "drop line" else [lines[i], lines[i]]
            text = "".join(lines)
            continue
        start = draw(st.integers(0, len(text)))
        end = draw(st.integers(start, min(len(text), start + 40)))
        text = text[:start] + "".join(draw(st.lists(SYNTAX | TEXT, max_size=12))) + text[end:]
    return text


JSON_VALUE = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)
FIELDS = st.sampled_from(
    ["title", "abstract", "authors", "year", "url", "id", "venue", "categories", "doi", "arxiv_id",
     "versions", "update_date", "journal-ref"]
)  # fmt: skip


@st.composite
def jsonl_records(draw) -> str:
    """Our records and arXiv's with any JSON in any field (lone surrogates included)."""
    records = draw(st.lists(st.dictionaries(FIELDS, JSON_VALUE, max_size=8), min_size=1, max_size=4))
    return "".join(json.dumps(record) + "\n" for record in records)


@st.composite
def csv_rows(draw) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(draw(st.lists(FIELDS, max_size=6)))
    writer.writerows(draw(st.lists(st.lists(st.text(TEXT, max_size=20), min_size=1, max_size=7), max_size=4)))
    return out.getvalue()


def read_like_a_user(suffix: str, content: str | bytes) -> None:
    """Read content as a file of that format and check the readers' promise."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"corpus{suffix}"
        raw = content if isinstance(content, bytes) else content.encode("utf-8", "surrogatepass")
        path.write_bytes(raw)
        lines = raw.count(b"\n") + 1
        try:
            load = read_corpus([path])
        except CorpusError as err:
            assert err.path == str(path)
            if err.line is None:  # only a whole-file problem has no line
                assert err.problem.startswith("no "), err
            else:
                assert 1 <= err.line <= lines, err
            return
    for entry in load.skipped:
        assert entry.reason and (entry.line is None or 1 <= entry.line <= lines), entry
    for paper in load.papers:
        assert paper.title and paper.abstract and paper.source.startswith(str(path))
        assert not any(char in paper.id for char in ID_FORBIDDEN_CHARS)
        json.dumps(paper.citation(), ensure_ascii=False).encode("utf-8")  # storable: no lone surrogate


def test_every_format_read_by_suffix_is_generated_here():
    assert set(CORPUS_SUFFIXES) - {".ndjson", ".json"} == set(VALID)


@pytest.mark.parametrize("suffix", sorted(VALID))
@SOME
@given(data=st.data())
def test_a_mutated_corpus_file_raises_only_corpus_errors_with_their_line(suffix, data):
    read_like_a_user(suffix, data.draw(mutated(VALID[suffix])))


@pytest.mark.parametrize("suffix", sorted(VALID))
@FEW
@given(raw=st.binary(max_size=400))
def test_arbitrary_bytes_raise_only_corpus_errors(suffix, raw):
    read_like_a_user(suffix, raw)


@SOME
@given(content=jsonl_records())
@example('{"title": "A \\ud83d title", "abstract": "A lone surrogate in a JSON escape."}\n')
@example('{"title": [], "abstract": "A list is not a title."}\n')
@example('{"title": "T", "abstract": "A", "versions": null, "id": "1234#5"}\n')
@example('{"title": "T", "abstract": "A", "year": Infinity}\n')
def test_json_records_with_any_values_raise_only_corpus_errors(content):
    read_like_a_user(".jsonl", content)


@SOME
@given(content=csv_rows())
def test_csv_rows_with_any_values_raise_only_corpus_errors(content):
    read_like_a_user(".csv", content)


@pytest.mark.parametrize(
    ("record", "problem"),
    [
        ({"title": [], "abstract": "A list is not a title."}, "title must be text, not a JSON list"),
        ({"title": "T", "abstract": {"text": "x"}}, "abstract must be text, not a JSON object"),
        ({"title": "T", "abstract": "A", "versions": [], "id": "2101.1#2"}, "id '2101.1#2' must not contain"),
        ({"title": "T", "abstract": "A", "arxiv_id": "a@b"}, "arxiv_id 'a@b' must not contain"),
    ],
)
def test_json_values_that_are_not_text_are_rejected_with_their_line(tmp_path, record, problem):
    path = tmp_path / "papers.jsonl"
    path.write_text('{"title": "Fine", "abstract": "Fine."}\n' + json.dumps(record) + "\n")
    with pytest.raises(CorpusError, match=rf"papers.jsonl:2: {re.escape(problem)}"):
        read_corpus([path])


def test_a_year_of_infinity_is_rejected_with_its_line(tmp_path):
    path = tmp_path / "papers.jsonl"
    path.write_text('{"title": "T", "abstract": "A", "year": Infinity}\n')
    with pytest.raises(CorpusError, match=r"papers.jsonl:1: year inf is not a whole number"):
        read_corpus([path])


def test_a_unicode_line_separator_inside_an_abstract_keeps_the_pairs_of_a_txt_file(tmp_path):
    path = tmp_path / "papers.txt"
    path.write_text("First title\nAn abstract\u2028with a line separator.\nSecond title\nIts abstract.\n")
    assert [p.title for p in read_corpus([path]).papers] == ["First title", "Second title"]


def test_a_csv_error_in_the_header_names_line_1(tmp_path):
    path = tmp_path / "papers.csv"
    path.write_bytes(b"\rtitle,abstract\nT,A\n")
    with pytest.raises(CorpusError, match=r"papers.csv:1: malformed CSV"):
        read_corpus([path])


def test_a_lone_surrogate_in_json_is_rejected_with_its_line(tmp_path):
    path = tmp_path / "papers.jsonl"
    path.write_text('{"title": "Fine \\ud83d\\ude00", "abstract": "A pair is a character."}\n'
                    '{"title": "Broken", "abstract": "Half a pair: \\udc00."}\n')
    with pytest.raises(CorpusError, match=r"papers.jsonl:2: .*surrogate"):
        read_corpus([path])


# --- chunks ---------------------------------------------------------------------------------

WORD = st.one_of(
    st.text(st.characters(min_codepoint=ord("a"), max_codepoint=ord("z")), min_size=1, max_size=14),
    st.text(st.characters(min_codepoint=0x4E00, max_codepoint=0x4FFF), min_size=1, max_size=400),  # Chinese: no spaces
    st.text(st.sampled_from(list(".,;:!?()[]-'\"")), min_size=1, max_size=300),  # a run of punctuation
    st.text(TEXT, min_size=1, max_size=30).filter(str.strip),
    st.from_regex(r"[A-Z][a-z]{1,8}[.!?]", fullmatch=True),  # sentence ends
)
ABSTRACT = st.lists(WORD, min_size=1, max_size=120).map(" ".join).filter(str.strip)


def _bare(text: str) -> str:
    return "".join(text.split())


def assert_covers(abstract: str, texts: list[str], overlapping: bool) -> None:
    whole = _bare(abstract)
    if not overlapping:
        assert "".join(_bare(t) for t in texts) == whole
        return
    assert whole.startswith(_bare(texts[0])) and whole.endswith(_bare(texts[-1]))
    assert all(_bare(t) in whole for t in texts)


@MANY
@given(
    title=st.text(TEXT, min_size=1, max_size=60).map(lambda t: " ".join(t.split())).filter(bool),
    abstract=ABSTRACT,
    max_tokens=st.sampled_from([32, 64, 256]),
    overlap=st.sampled_from([0, 1]),
)
@example(title="T", abstract="我们提出了一种新的方法" * 60, max_tokens=64, overlap=0)
@example(title="T", abstract="!" * 600, max_tokens=64, overlap=1)
def test_chunks_fit_the_model_and_cover_the_abstract(real_embedder, title, abstract, max_tokens, overlap):
    paper = Paper(title=title, abstract=abstract)
    count = real_embedder.count_tokens
    assert max_tokens <= real_embedder.max_tokens
    try:
        chunks = chunk_paper(paper, count, max_tokens, overlap)
    except CorpusError as err:  # a title that leaves no room: said, not truncated
        assert count(title + "\n.") > max_tokens and "title" in str(err)
        return
    assert chunks and all(chunk.text.strip() for chunk in chunks)
    assert all(count(chunk.embed_text) <= max_tokens for chunk in chunks)
    assert_covers(abstract, [chunk.text for chunk in chunks], overlapping=overlap > 0)
    assert [chunk.ordinal for chunk in chunks] == list(range(len(chunks)))


def test_a_title_too_long_for_any_chunk_is_a_corpus_error_naming_the_entry(real_embedder):
    paper = Paper(title="word " * 300, abstract="Text.", source="refs.jsonl:7")
    with pytest.raises(CorpusError, match=r"^refs.jsonl:7: the title .* tokens long"):
        chunk_paper(paper, real_embedder.count_tokens, 256)


# --- questions --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def counted(real_embedder, bundled_papers, tmp_path_factory):
    """A real index of twelve bundled papers whose embedder counts what it embeds."""
    embedder = CountingEmbedder(real_embedder)
    index_settings = Settings(data_dir=tmp_path_factory.mktemp("properties") / "data")
    index = PaperIndex(index_settings, embedder)
    index.ingest(bundled_papers[:12], progress=False)
    return Retriever(index, index_settings), embedder


@pytest.fixture(scope="module")
def api(counted):
    """The API over that index, answering with a scripted model, as a TestClient."""
    retriever, _ = counted
    llm = ScriptedLLM(quoting)
    workspace = Workspace(open_pipeline(retriever.settings, retriever=retriever, llm=llm))
    with TestClient(build_api(workspace, keys=[])) as client:
        yield client, llm


def post_json(client: TestClient, url: str, body: dict):
    """POST body as JSON escaped to ASCII, as browsers and the openai client send lone surrogates."""
    return client.post(url, content=json.dumps(body).encode(), headers={"Content-Type": "application/json"})


CONTROL = st.characters(categories=("Cc", "Cf"))  # \x00-\x1f, \x7f-\x9f, bidi marks, zero-width
RTL = st.sampled_from(["ما هو", "מהו", "\u202e", "\u200f", "\u202b", "DiffCSE؟", "\u2067עברית\u2069"])
SURROGATE = st.characters(categories=("Cs",))
PIECE = st.one_of(
    st.sampled_from(["What is", "DiffCSE", "contrastive", "learning", "?", " ", "\n", "\t"]),
    CONTROL, RTL, SURROGATE, st.text(TEXT, max_size=8),
)
QUESTION = st.one_of(
    st.lists(PIECE, max_size=12).map("".join),
    st.text(st.sampled_from([" ", "\t", "\n", "\r", "\u3000", "\u00a0", "\u2028"]), max_size=20),  # only white space
    st.builds(lambda base, n: (base * 3000)[: 2000 + n], st.sampled_from(["why? ", "ما ", "x"]), st.integers(1, 3000)),
)


def expected_problem(question: str, limit: int) -> str | None:
    """What the question should be refused for (the promise, written independently of the code)."""
    question = question.strip()
    if not question:
        return "Please type a question"
    if len(question) > limit:
        return "the limit is"
    if re.search("[\ud800-\udfff]", question):
        return "broken character"
    if not any(char.isalnum() for char in question):
        return "no letters or digits"
    return None


@contextlib.contextmanager
def counting(embedder, llm):
    """What was embedded and which prompts were sent while inside, as two lists."""
    embedder.embedded.clear()
    llm.prompts.clear()
    yield embedder.embedded, llm.prompts


@MANY
@given(question=QUESTION)
@example(question="\ud800")
@example(question="What is DiffCSE?\udcff")
@example(question="   \t\n ")
@example(question="\u202eWhat is DiffCSE?")
@example(question="\x00\x07\x1b[31m")
@example(question="why? " * 500)
def test_any_question_gets_a_reply_from_the_engine(counted, question):
    retriever, embedder = counted
    llm = ScriptedLLM(quoting)
    from rag.generation import AnswerEngine

    engine = AnswerEngine(retriever.settings, retriever, llm)
    problem = expected_problem(question, retriever.settings.answering.max_question_chars)
    with counting(embedder, llm) as (embedded, prompts):
        answer = engine.ask(question)
    assert answer.text.strip()
    if problem:
        assert problem in answer.text and answer.error_kind == "invalid_question"
        assert embedded == [] and prompts == []  # refused before any model work
    else:
        assert answer.error_kind != "invalid_question"
    answer.to_dict()


@FEW
@given(question=QUESTION, stream=st.booleans())
@example(question="What is DiffCSE?\ud800", stream=False)
@example(question="x" * 2001, stream=True)
@example(question="\ud800\udc00", stream=False)  # a pair, split: one character once sent
def test_any_question_gets_a_reply_from_the_api(api, counted, question, stream):
    client, llm = api
    _, embedder = counted
    body = {"model": "default", "stream": stream, "messages": [{"role": "user", "content": question}]}
    # Judged as the server receives it: JSON joins an escaped pair ("\ud800\udc00") into one character.
    problem = expected_problem(json.loads(json.dumps(question)), 2000)
    with counting(embedder, llm) as (embedded, prompts):
        reply = post_json(client, "/v1/chat/completions", body)
    if reply.status_code == 400:  # any question the one check refuses: refused with the field named
        assert problem in ("Please type a question", "the limit is", "broken character", "no letters or digits")
        assert reply.json()["error"]["param"] == "messages.0.content"
    else:
        assert reply.status_code == 200, reply.text
        text = reply.text
        if stream:
            assert text.endswith("data: [DONE]\n\n")
            text = "".join(
                json.loads(event[len("data: "):])["choices"][0]["delta"].get("content", "")
                for event in text.split("\n\n")[:-2]
            )
        else:
            text = reply.json()["choices"][0]["message"]["content"]
        assert text.strip() and (problem is None or problem in text)
    if problem:
        assert embedded == [] and prompts == []


@FEW
@given(question=QUESTION)
@example(question="What is DiffCSE?\ud800")
@example(question="x" * 2001)
def test_any_question_gets_a_reply_in_the_page(counted, question):
    from ui.handlers import ChatHandlers

    retriever, embedder = counted
    llm = ScriptedLLM(quoting)
    handlers = ChatHandlers(Workspace(open_pipeline(retriever.settings, retriever=retriever, llm=llm)))
    # The page shows a broken character as U+FFFD (its JSON cannot carry it) and answers the rest.
    problem = expected_problem(re.sub("[\ud800-\udfff]", "\ufffd", question), retriever.settings.answering.max_question_chars)
    with counting(embedder, llm) as (embedded, prompts):
        *_, (messages, records, _, details) = handlers.respond(question, [], None)
        result = handlers.ask(question)
    json.dumps([messages, records, details, result], ensure_ascii=False).encode("utf-8")  # what gradio sends
    assert messages[-1]["role"] == "assistant" and messages[-1]["content"].strip()
    if problem:
        assert problem in details["error"] and problem in result["error"]
        assert embedded == [] and prompts == []


def test_an_over_long_search_is_refused_before_anything_is_embedded(api, counted):
    client, _ = api
    _, embedder = counted
    embedder.embedded.clear()
    reply = client.post("/v1/search", json={"query": "contrastive " * 1000})
    assert reply.status_code == 400 and reply.json()["error"]["param"] == "query"
    assert embedder.embedded == []


def test_a_search_with_a_broken_character_is_refused_not_a_crash(api):
    client, _ = api
    reply = post_json(client, "/v1/search", {"query": "contrastive \ud800 learning"})
    assert reply.status_code == 400 and reply.json()["error"]["param"] == "query"


def test_a_search_with_a_broken_character_is_an_invalid_question(counted):
    from rag.errors import InvalidQuestionError

    retriever, embedder = counted
    embedder.embedded.clear()
    with pytest.raises(InvalidQuestionError, match="broken character"):
        retriever.search("contrastive \udcff learning")  # what argv makes of the byte 0xff
    assert embedder.embedded == []


# --- settings ---------------------------------------------------------------------------------


SETTINGS = sorted((section, name) for section, model in SECTIONS.items() for name in model.model_fields)


def _scalar_kind(setting: tuple[str, str]) -> str:
    section, name = setting
    annotation = str(SECTIONS[section].model_fields[name].annotation)
    for kind in ("Literal", "list", "bool", "int", "float"):  # Literal first: its choices may hold "int"
        if kind in annotation:
            return kind
    return "text"


# TOML values no field of that kind accepts (and a nested table, which no field accepts).
WRONG = {
    "bool": st.sampled_from(['"maybe"', "3", "[true]"]),
    "int": st.sampled_from(['"many"', "1.5", "[1]"]),
    "float": st.sampled_from(['"fast"', "[1.0]"]),
    "list": st.sampled_from(['"a.jsonl"', "3"]),
    "Literal": st.sampled_from(['"no-such-choice"', "3"]),
    "text": st.sampled_from(["[1, 2]"]),
}


@contextlib.contextmanager
def environment(**variables: str | None):
    """The variables set (None: unset) for the block, as they were after it."""
    saved = {name: os.environ.get(name) for name in variables}
    for name, value in variables.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@SOME
@given(data=st.data(), setting=st.sampled_from(SETTINGS))
def test_a_config_file_value_of_the_wrong_type_names_its_field(tmp_path_factory, data, setting):
    section, name = setting
    value = data.draw(WRONG[_scalar_kind(setting)] | st.just("{ nested = 1 }"))
    config = tmp_path_factory.mktemp("config") / "rag.toml"
    config.write_text(f"[{section}]\n{name} = {value}\n")
    # the sealed test run sets RAG_STORAGE__DATA_DIR, which would win over the file's value
    with environment(RAG_CONFIG=str(config), RAG_STORAGE__DATA_DIR=None), pytest.raises(SettingsError, match=rf"\b{name}\b"):
        load_settings()


@FEW
@given(setting=st.sampled_from([s for s in SETTINGS if _scalar_kind(s) != "text"]))
def test_an_environment_variable_of_the_wrong_type_names_its_field(setting):
    section, name = setting
    variable = f"RAG_{section.upper()}__{name.upper()}"
    with environment(**{variable: "{not json"}), pytest.raises(SettingsError, match=rf"\b{name}\b"):
        load_settings()


def test_a_config_file_that_is_not_toml_is_a_settings_error_naming_the_file(tmp_path):
    config = tmp_path / "rag.toml"
    config.write_text("top_k = \n")
    with environment(RAG_CONFIG=str(config)), pytest.raises(SettingsError, match=r"rag.toml: not valid TOML .*line 1"):
        load_settings()
