"""Exporting answers and conversations (rag/export.py) and its front-ends: BibTeX
entries that parse back (bibtexparser 2, and the project's own .bib reader) with
their metadata; the conversation as Markdown; `rag ask --format`; the page's
"Download conversation" file, from answers made with a scripted model."""

from __future__ import annotations

import json
import re
from dataclasses import replace
from datetime import date
from pathlib import Path

import bibtexparser
import pytest
from bibtexparser.middlewares import SeparateCoAuthors

from cli.main import main
from rag.readers.bibtex import read_bibtex
from rag.paper import Paper
from rag.export import (
    answer_as,
    bibtex_entries,
    bibtex_entry,
    citation_key,
    conversation_markdown,
    exchange_from_answer,
    exchange_from_citations,
)
from rag.generation import Answer, Source
from rag.index import PaperIndex
from rag.pipeline import Workspace, open_pipeline
from tests.fault_server import FaultServer
from tests.test_generation import ScriptedLLM, quoting
from ui.app import build_app
from ui.handlers import ChatHandlers

# What the evidence step's model says of every paper: its first sentence answers.
EVIDENCE_REPLY = quoting  # the model writes each paper's first evidence sentence

ATTENTION = Paper(
    title="Attention Is All You Need",
    abstract="The dominant sequence transduction models are based on recurrent networks. We propose the Transformer.",
    authors="Ashish Vaswani, Noam Shazeer, Niki Parmar",
    year=2017,
    venue="Advances in Neural Information Processing Systems",
    doi="10.5555/3295222.3295349",
    arxiv_id="1706.03762",
)
BERT = Paper(
    title="BERT: Pre-training of Deep Bidirectional Transformers for Language Understanding",
    abstract="We introduce BERT. It obtains new state-of-the-art results on eleven tasks.",
    authors="Jacob Devlin, Ming-Wei Chang, Kenton Lee, Kristina Toutanova",
    year=2019,
    venue="Proceedings of the 2019 Conference of the North American Chapter of the ACL",
    url="https://aclanthology.org/N19-1423/",
    doi="10.18653/v1/N19-1423",
)
PREPRINT = Paper(
    title="A Preprint About Scaling Laws",
    abstract="Loss scales as a power law.",
    authors="Jürgen Schmidhuber",
    year=2020,
    arxiv_id="2001.08361",
)
NASTY = Paper(
    title=r"100% of {GPT-4}'s C# & R_2 cost $5 via C:\temp ~ {unmatched",
    abstract="Specials everywhere.",
    authors="Zoë Ça Müller, Łukasz Kaiser, Texas A and M Team",
    year=2023,
    venue="Journal of Odd Titles & Co",
    url="https://example.org/a_b%20c",
)


def parse(bibtex: str):
    library = bibtexparser.parse_string(bibtex, append_middleware=[SeparateCoAuthors()])
    assert library.failed_blocks == [], [block.error for block in library.failed_blocks]
    return library


def read_back(bibtex: str, tmp_path: Path) -> list[Paper]:
    """The entries as the project's .bib reader (bibtexparser 2 + LaTeX decoding) reads them."""
    path = tmp_path / "export.bib"
    path.write_text(bibtex, encoding="utf-8")
    return [found.paper for found in read_bibtex(path)]


# --- BibTeX -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("venue", "entry_type", "venue_field"),
    [
        ("Proceedings of the 2021 Conference on Empirical Methods in NLP", "inproceedings", "booktitle"),
        ("ICLR 2024", "inproceedings", "booktitle"),
        ("Advances in Neural Information Processing Systems", "inproceedings", "booktitle"),
        ("Transactions of the Association for Computational Linguistics", "article", "journal"),
        ("Proceedings of the National Academy of Sciences", "article", "journal"),
        ("Nature Machine Intelligence", "article", "journal"),
        ("", "misc", None),
    ],
)
def test_the_entry_type_follows_the_venue(venue, entry_type, venue_field):
    [entry] = parse(bibtex_entry(replace(BERT, venue=venue))).entries
    assert entry.entry_type == entry_type
    fields = {f.key for f in entry.fields}
    assert fields & {"booktitle", "journal"} == ({venue_field} if venue_field else set())
    if venue_field:
        assert entry[venue_field] == venue


def test_an_arxiv_preprint_is_misc_with_eprint_its_abstract_page_and_a_note():
    [entry] = parse(bibtex_entry(PREPRINT)).entries
    assert entry.entry_type == "misc"
    assert entry["eprint"] == "2001.08361" and entry["archivePrefix"] == "arXiv"
    assert entry["url"] == "https://arxiv.org/abs/2001.08361"
    assert entry["note"] == "arXiv preprint arXiv:2001.08361"
    assert "doi" not in {f.key for f in entry.fields}


def test_the_url_is_the_papers_own_and_a_doi_stays_a_doi():
    [bert, attention] = parse(bibtex_entries([BERT, ATTENTION])).entries
    assert bert["url"] == BERT.url and bert["doi"] == BERT.doi
    assert attention["doi"] == ATTENTION.doi
    assert attention["url"] == "https://arxiv.org/abs/1706.03762"  # not the DOI's address
    assert attention["eprint"] == "1706.03762" and "note" not in {f.key for f in attention.fields}  # it has a venue
    no_link = parse(bibtex_entry(Paper(title="Only A DOI", abstract="x", doi="10.1/x"))).entries[0]
    assert {f.key for f in no_link.fields} == {"title", "doi"}


def test_specials_accents_and_capitals_read_back_as_written(tmp_path):
    bibtex = bibtex_entries([NASTY, ATTENTION, BERT, PREPRINT])
    entries = parse(bibtex).entries
    assert [e["year"] for e in entries] == ["2023", "2017", "2019", "2020"]
    assert entries[0]["author"] == ["Zoë Ça Müller", "Łukasz Kaiser", "{Texas A and M Team}"]
    assert entries[1]["author"] == ["Ashish Vaswani", "Noam Shazeer", "Niki Parmar"]
    assert "{BERT:}" in entries[2]["title"]  # styles lower-case titles; the acronym keeps its capitals

    for original, read in zip([NASTY, ATTENTION, BERT, PREPRINT], read_back(bibtex, tmp_path), strict=True):
        assert read.title == original.title
        assert read.authors == original.authors
        assert (read.year, read.venue, read.doi, read.arxiv_id) == (
            original.year, original.venue, original.doi, original.arxiv_id
        )
        assert read.url == (original.url or f"https://arxiv.org/abs/{original.arxiv_id}")


def test_keys_are_surname_year_word_and_unique_with_letter_suffixes():
    assert citation_key(ATTENTION) == "vaswani2017attention"
    assert citation_key(BERT) == "devlin2019bert"
    assert citation_key(PREPRINT) == "schmidhuber2020preprint"  # "A" is skipped
    assert citation_key(NASTY) == "muller2023100"  # ASCII-folded surname
    assert citation_key(Paper(title="The Łódź Corpus", abstract="x", year=2021)) == "lodz2021"  # no authors
    assert citation_key(Paper(title="Über Alles", abstract="x", authors="Jean Dupont")) == "dupontuber"

    others = [replace(ATTENTION, title=f"Attention Variant {n}") for n in range(3)]
    keys = [e.key for e in parse(bibtex_entries([ATTENTION, *others])).entries]
    assert keys == ["vaswani2017attention", "vaswani2017attentiona", "vaswani2017attentionb", "vaswani2017attentionc"]
    assert bibtex_entries([ATTENTION, *others]) == bibtex_entries([ATTENTION, *others])  # stable


def test_a_paper_given_twice_is_one_entry():
    again = replace(ATTENTION, id="another-id", abstract="")
    entries = parse(bibtex_entries([ATTENTION, BERT, again])).entries
    assert [e.key for e in entries] == ["vaswani2017attention", "devlin2019bert"]
    assert bibtex_entries([]) == ""


# --- answers and conversations ------------------------------------------------------------


def answer_citing(question: str, papers: list[Paper], cited: list[int], text: str) -> Answer:
    """An answer as the engine makes one: numbered sources, of which `cited` are cited."""
    sources = [Source(n, paper, [paper.abstract]) for n, paper in enumerate(papers, start=1)]
    return Answer(question, question, text=text, sources=sources, cited_numbers=cited, generated=bool(cited))


def conversation() -> list[Answer]:
    return [
        answer_citing(
            "How do the Transformer and BERT differ?",
            [ATTENTION, BERT, PREPRINT],
            [1, 2],
            "The Transformer is based solely on attention [1]. BERT pre-trains bidirectional representations [2].",
        ),
        answer_citing("What does BERT obtain?", [BERT, ATTENTION], [1], "It obtains new state-of-the-art results [1]."),
        answer_citing("What is the boiling point of nitrogen?", [], [], "The papers do not answer this."),
    ]


def bibtex_block(markdown: str) -> str:
    blocks = re.findall(r"^```bibtex\n(.*?)^```$", markdown, re.S | re.M)
    assert len(blocks) == 1, markdown
    return blocks[0]


def test_the_conversation_has_every_question_and_answer_then_each_cited_paper_once():
    answers = conversation()
    text = conversation_markdown([exchange_from_answer(a) for a in answers], date(2025, 3, 1))
    assert text.startswith("# paper-rag conversation, 2025-03-01\n")
    for number, answer in enumerate(answers, start=1):
        assert f"## Q{number}: {answer.question}\n\n{answer.markdown()}\n" in text
    assert "[1]. BERT pre-trains bidirectional representations [2]." in text
    assert f"Sources:\n[1] {ATTENTION.title} — Vaswani et al. (2017)" in text
    assert text.index("## Q3") < text.index("## References (BibTeX)")
    assert text.count("## References (BibTeX)") == 1
    entries = parse(bibtex_block(text)).entries
    # BERT is cited twice and listed once; PREPRINT, a source never cited, is not listed.
    assert [e.key for e in entries] == ["vaswani2017attention", "devlin2019bert"]


def test_a_title_with_a_code_fence_cannot_end_the_bibtex_block():
    fenced = replace(PREPRINT, title="Printing ``` In Markdown")
    answer = answer_citing("What about fences?", [fenced], [1], "They print [1].")
    block = bibtex_block(conversation_markdown([exchange_from_answer(answer)]))
    assert parse(block).entries[0]["title"] == "Printing ''' In Markdown"


def test_an_empty_conversation_says_so():
    text = conversation_markdown([], date(2025, 3, 1))
    assert text == "# paper-rag conversation, 2025-03-01\n\nNo questions were asked.\n"


def from_dict(data: dict):
    """An exchange from an answer kept as data (its JSON), as the page's records keep it."""
    return exchange_from_citations(data["question"], data["markdown"], [s for s in data["sources"] if s["cited"]])


def test_the_answers_dict_exports_as_the_answer_itself():
    for answer in conversation():
        rebuilt = from_dict(json.loads(json.dumps(answer.to_dict())))
        from_answer = exchange_from_answer(answer)
        assert (rebuilt.question, rebuilt.answer_markdown) == (from_answer.question, from_answer.answer_markdown)
        assert [p.title for p in rebuilt.sources] == answer.cited_titles
        assert bibtex_entries(rebuilt.sources) == bibtex_entries(from_answer.sources)
    dicts = [from_dict(a.to_dict()) for a in conversation()]
    answers = [exchange_from_answer(a) for a in conversation()]
    assert conversation_markdown(dicts, date(2025, 3, 1)) == conversation_markdown(answers, date(2025, 3, 1))


def test_answer_as_each_format():
    answer, _, refused = conversation()
    assert answer_as(answer, "markdown") == answer.markdown()
    assert json.loads(answer_as(answer, "json")) == json.loads(json.dumps(answer.to_dict()))
    assert [e.key for e in parse(answer_as(answer, "bibtex")).entries] == ["vaswani2017attention", "devlin2019bert"]
    assert answer_as(refused, "bibtex") == ""
    with pytest.raises(ValueError, match="unknown export format 'xml'"):
        answer_as(answer, "xml")


# --- rag ask --format ---------------------------------------------------------------------


def with_metadata(papers: list[Paper]) -> list[Paper]:
    """The corpus papers with authors, years, venues and arXiv ids, as a real export has."""
    return [
        replace(paper, authors=f"Ada Lovelace{n}, Alan Turing", year=2015 + n, venue="ICLR 2024" if n % 2 else "",
                arxiv_id=f"2401.{n:05d}")
        for n, paper in enumerate(papers)
    ]  # fmt: skip


def write_records(path: Path, papers: list[Paper]) -> Path:
    fields = ("title", "abstract", "authors", "year", "venue", "arxiv_id")
    path.write_text("".join(json.dumps({f: getattr(p, f) for f in fields}) + "\n" for p in papers))
    return path


@pytest.fixture
def cli_data(tmp_path, small_corpus, monkeypatch):
    """An index of papers with metadata, and `rag ask` answering through a scripted HTTP model."""
    papers = with_metadata(small_corpus)
    data = ["--data-dir", str(tmp_path / "data")]
    assert main(["ingest", "--quiet", str(write_records(tmp_path / "papers.jsonl", papers)), *data]) == 0
    with FaultServer("ok", reply=EVIDENCE_REPLY) as server:
        monkeypatch.setenv("RAG_LLM__BASE_URL", server.base_url)
        monkeypatch.setenv("RAG_LLM__MAX_RETRIES", "0")
        yield data, {p.title: p for p in papers}


def test_rag_ask_prints_the_answer_as_json_markdown_or_bibtex(cli_data, small_corpus, capsys):
    data, papers = cli_data
    question = small_corpus[4].abstract[:200]
    capsys.readouterr()

    assert main(["ask", question, "--format", "json", *data]) == 0
    answer = json.loads(capsys.readouterr().out)
    assert answer["generated"] and small_corpus[4].title in answer["cited_titles"]
    assert main(["ask", question, "--json", *data]) == 0  # the older spelling
    assert json.loads(capsys.readouterr().out)["cited_titles"] == answer["cited_titles"]

    assert main(["ask", question, "--format", "markdown", *data]) == 0
    assert capsys.readouterr().out == answer["markdown"] + "\n"

    assert main(["ask", question, "--format", "bibtex", *data]) == 0
    bibtex = capsys.readouterr().out
    assert bibtex == bibtex_entries(papers[title] for title in answer["cited_titles"])
    assert len(parse(bibtex).entries) == len(answer["cited_titles"])

    assert main(["ask", question, *data]) == 0  # the default: streamed text
    text = capsys.readouterr().out
    assert not text.startswith("{") and f"\nSources:\n[1] {answer['cited_titles'][0]}" in text


def test_rag_ask_bibtex_of_an_answer_citing_nothing_is_empty(cli_data, capsys):
    data, _ = cli_data
    capsys.readouterr()
    assert main(["ask", "What is the boiling point of liquid nitrogen at sea level?", "--format", "bibtex", *data]) == 0
    out = capsys.readouterr()
    assert out.out == "" and "cites no papers" in out.err


# --- the page's download ------------------------------------------------------------------


@pytest.fixture
def handlers(settings, embedder, small_corpus):
    papers = with_metadata(small_corpus)
    PaperIndex(settings, embedder).ingest(papers, progress=False)
    pipeline = open_pipeline(settings, embedder=embedder, llm=ScriptedLLM(EVIDENCE_REPLY))
    return ChatHandlers(Workspace(pipeline)), {p.title: p for p in papers}


def records_after(handlers: ChatHandlers, question: str, records: list[dict]) -> tuple[list[dict], dict]:
    """The session's records and the answer's details once `respond` has finished."""
    *_, (_, records, _, details) = handlers.respond(question, records, None)
    return records, details


def test_the_download_holds_the_conversation_and_bibtex_of_its_cited_papers(handlers, small_corpus):
    chat, papers = handlers
    first, second = small_corpus[4].abstract[:200], small_corpus[7].abstract[:200]
    records, one = records_after(chat, first, [])
    records, two = records_after(chat, second, records)
    rejected, _ = records_after(chat, "   ", records)  # a blank question is part of the conversation too
    assert one["cited_titles"] and two["cited_titles"]

    update = chat.download_conversation(rejected)
    assert update["interactive"] is True
    path = Path(update["value"])
    assert re.fullmatch(r"paper-rag-conversation-\d{8}-\d{4}\.md", path.name)
    text = path.read_text(encoding="utf-8")
    assert f"## Q1: {first}\n\n{one['markdown']}\n" in text
    assert f"## Q2: {second}\n\n{two['markdown']}\n" in text
    assert "## Q3: (empty question)\n\nPlease type a question." in text
    cited = list(dict.fromkeys(one["cited_titles"] + two["cited_titles"]))
    assert bibtex_block(text) == bibtex_entries(papers[title] for title in cited)

    again = Path(chat.download_conversation(records)["value"])
    assert again.parent != path.parent  # each file in its own folder: sessions never share one


def test_nothing_to_download_disables_the_button(handlers):
    chat, _ = handlers
    assert chat.download_conversation([]) == {"__type__": "update", "value": None, "interactive": False}


def test_the_button_follows_the_conversation_without_an_api_endpoint(handlers):
    chat, _ = handlers
    app = build_app(chat.pipeline, chat.workspace)
    [button] = [b for b in app.blocks.values() if getattr(b, "elem_id", None) == "rag-download"]
    [event] = [f for f in app.fns.values() if getattr(f.fn, "__name__", "") == "download_conversation"]
    assert [t[1] for t in event.targets] == ["change"]
    assert [b._id for b in event.outputs] == [button._id]
    assert event.queue is False and event.api_visibility == "private"
