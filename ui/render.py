"""Turning engine results into what the page shows: chat messages with
expandable sources, the corpus description, the model status line.

Pure functions over rag.generation's Answer (a refusal's `notice` and `closest`
papers, a normal answer's cited sources): no retrieval or prompting here.
Everything that comes from the corpus, the model or the user is made inert
before it is shown (rag.safe_markdown): text inside the page's HTML is escaped
as HTML and as Markdown (the chatbot parses HTML that shares a line with text as
Markdown), and answers and questions, shown as Markdown, can form no HTML,
image or link except to a cited paper's own page.
"""

from __future__ import annotations

import html
import re
from collections import Counter
from typing import Iterable, Sequence

from rag.comparison import NOT_STATED, Comparison
from rag.paper import Paper, short_name
from rag.generation import Answer, Source
from rag.hostile import judge_sentence
from rag.llm import ChatLLM
from rag.pipeline import IngestReport
from rag.safe_markdown import inert_html, inert_markdown
from rag.text import STOPWORDS, split_sentences, words

FOUND_SHOWN = 5  # retrieved papers listed while the answer is written
CURSOR = " ▍"
GIVEN_NOTE = "Bold: the sentences of this abstract that were given to the model."
EVIDENCE_NOTE = "Marked: the sentences the answer rests on. Bold: every sentence the model was given."
CITATION = re.compile(r"\[(\d+)\](?![(:])")


def _one_line(text: str) -> str:
    """Collapse white space: a blank line inside an HTML block would end it in Markdown."""
    return " ".join(text.split())


def highlighted_abstract(abstract: str, given: Iterable[str], supporting: Iterable[str] = ()) -> str:
    """The abstract as HTML: the sentences given to the model in bold, those an answer
    sentence rests on marked, and a sentence addressed to assistants or carrying markup
    replaced by the note saying why it is not shown."""
    given_texts = {_one_line(s) for s in given}
    supporting_texts = {_one_line(s) for s in supporting}
    parts = []
    for sentence in split_sentences(_one_line(abstract)):
        verdict = judge_sentence(sentence)
        if verdict.hostile and verdict.note:
            parts.append(f'<span class="rag-withheld">[{inert_html(verdict.note)}]</span>')
        elif sentence in supporting_texts:
            parts.append(f'<mark class="rag-support"><strong>{inert_html(sentence)}</strong></mark>')
        elif sentence in given_texts:
            parts.append(f"<strong>{inert_html(sentence)}</strong>")
        else:
            parts.append(inert_html(sentence))
    return " ".join(parts)


def evidence_list(source: Source) -> str:
    """The sentences the model was given from one paper, those the answer rests on marked,
    and a note for each kind of sentence that was kept out."""
    items = [
        f'<li><mark class="rag-support">{inert_html(_one_line(s))}</mark></li>' if i in source.supporting
        else f"<li>{inert_html(_one_line(s))}</li>"
        for i, s in enumerate(source.sentences)
    ]
    notes = "".join(f'<div class="rag-withheld">⚠ {inert_html(note)}</div>' for note in source.withheld)
    return f'<div class="rag-evidence"><ul>{"".join(items)}</ul>{notes}</div>'


def _paper_meta(paper: Paper) -> str:
    """"NeurIPS · link": where, and the paper's own page (who and when is in the summary)."""
    meta = inert_html(_one_line(paper.venue))
    if paper.link.startswith(("http://", "https://")):  # never another scheme (javascript:, data:)
        link = f'<a href="{html.escape(paper.link, quote=True)}" target="_blank" rel="noopener noreferrer">link</a>'
        meta = f"{meta} · {link}" if meta else link
    return f'<div class="rag-meta">{meta}</div>' if meta else ""


def _byline(paper: Paper) -> str:
    """" · Vaswani et al. (2017)" after the title, so a cited paper shows who and when unopened."""
    if not paper.byline:
        return ""
    return f' <span class="rag-byline" title="{inert_html(paper.authors)}">\u00b7 {inert_html(_one_line(paper.byline))}</span>'


def source_details(label: str, paper: Paper, source: Source | None, note: str, number: int | None = None) -> str:
    """One paper as a <details> element: the title as summary; inside, the evidence the model
    was given (what the answer rests on marked), then the whole abstract."""
    given = source.sentences if source else []
    supporting = [source.sentences[i] for i in source.supporting] if source else []
    anchor = f" rag-ev-{number}" if number is not None else ""  # classes survive Gradio's sanitizer, data-* does not
    return (
        f'<details class="rag-source{anchor}">'
        f'<summary><span class="rag-num">{inert_html(label)}</span> '
        f'<span class="rag-title">{inert_html(_one_line(paper.title))}</span>{_byline(paper)}</summary>'
        f"{_paper_meta(paper)}"
        f"{evidence_list(source) if source and source.supporting else ''}"
        f'<div class="rag-abstract">{highlighted_abstract(paper.abstract, given, supporting)}</div>'
        f'<div class="rag-note">{inert_html(note)}</div>'
        "</details>"
    )


def sources_block(answer: Answer) -> str:
    """The expandable list under an answer: the cited papers with their evidence, or for a
    refusal the closest ones (none for a failed or rejected question)."""
    if answer.cited:
        heading = "Sources"
        hint = "click [n] in the answer, or a title, to see its evidence"
        items = [source_details(f"[{s.number}]", s.paper, s, EVIDENCE_NOTE, s.number) for s in answer.cited]
    elif answer.closest:
        heading, hint = "Closest papers (not cited)", "click a title to read its abstract"
        given = {s.title: s for s in answer.sources}
        items = []
        for rank, paper in enumerate(answer.closest, start=1):
            source: Source | None = given.get(paper.title)
            note = GIVEN_NOTE if source and source.sentences else "This abstract was retrieved but not given to the model."
            items.append(source_details(f"{rank}.", paper.paper, source, note))
    else:
        return ""
    return (
        '<div class="rag-sources">'
        f'<div class="rag-sources-heading">{heading} <span class="rag-hint">({hint})</span></div>'
        + "".join(items)
        + (near_misses_block(answer) if answer.cited else "")
        + "</div>"
    )


def near_misses_block(answer: Answer) -> str:
    """A "which papers" answer's candidates read but judged off-topic, collapsed."""
    if not answer.near_misses:
        return ""
    items = "".join(f"<li>{inert_html(_one_line(p.title))}</li>" for p in answer.near_misses)
    return (
        '<details class="rag-near-misses"><summary>'
        f"Read {answer.candidates_read} candidate papers; {len(answer.near_misses)} judged off-topic and left out"
        f"</summary><ul>{items}</ul></details>"
    )


def clickable_citations(markdown: str) -> str:
    """Each [n] of the (already inert) answer as a span the page's script opens the evidence of."""
    return CITATION.sub(
        lambda m: f'<span class="rag-cite rag-cite-{m.group(1)}" title="Show the evidence">[{m.group(1)}]</span>', markdown
    )


def table_html(table: Comparison) -> str:
    """A comparison as an HTML table: a column per paper, a row per aspect; a cell not yet
    made shows "…". Clicking a cell opens its source sentence (a <details>, no script)."""
    head = "".join(
        f'<th><span class="rag-cite rag-cite-{s.number}">[{s.number}]</span> {inert_html(_one_line(short_name(s.title)))}</th>'
        for s in table.sources
    )
    rows = []
    for aspect, row in table.rows():
        cells = []
        for cell in row:
            if cell is None:
                cells.append('<td class="rag-cell rag-pending">…</td>')
            elif not cell.stated:
                cells.append(f'<td class="rag-cell rag-not-stated"><em>{inert_html(NOT_STATED)}</em></td>')
            else:
                cells.append(
                    f'<td class="rag-cell"><details class="rag-cell-details"><summary>{inert_html(_one_line(cell.text))} '
                    f'<span class="rag-cite rag-cite-{cell.paper}">[{cell.paper}]</span></summary>'
                    f'<div class="rag-cell-source">From the abstract: “{inert_html(_one_line(cell.sentence or ""))}”</div>'
                    "</details></td>"
                )
        rows.append(f'<tr><th class="rag-aspect">{inert_html(aspect)}</th>{"".join(cells)}</tr>')
    table_part = (
        '<div class="rag-table-wrap"><table class="rag-table">'
        f'<thead><tr><th>aspect</th>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>'
    )
    if not table.differences:
        return table_part
    items = "".join(
        f"<li>{inert_html(_one_line(d.text))} "
        + "".join(f'<span class="rag-cite rag-cite-{n}">[{n}]</span>' for n in d.papers)
        + "</li>"
        for d in table.differences
    )
    return f'{table_part}<div class="rag-differences"><strong>Key differences</strong><ul>{items}</ul></div>'


def table_streaming_message(answer: Answer) -> str:
    """A table while its cells are made."""
    return (table_html(answer.table) if answer.table and answer.table.sources else "") + CURSOR


def answer_message(answer: Answer) -> str:
    """The final assistant message: the checked answer text (a comparison: its table), then
    its sources. A refusal shows its notice, and its closest papers as the expandable list."""
    if answer.table is not None:
        hint = '<div class="rag-hint">Click a cell to see the sentence it comes from.</div>'
        return f"{table_html(answer.table)}{hint}\n\n{sources_block(answer)}"
    text = answer.text.strip()
    if answer.refused and answer.closest and answer.notice.strip():
        text = answer.notice.strip()
    text = answer.safe_markdown(text)
    if answer.cited:
        text = clickable_citations(text)
    if answer.error and not answer.retrieved:  # a rejected question: no search was made
        text = f'<span class="rag-error-tag">Not answered</span> {text}'
    block = sources_block(answer)
    return f"{text}\n\n{block}" if block else text


def retrieved_block(answer: Answer) -> str:
    """The papers found for the question, each with its best passage's opening, shown
    as soon as retrieval is done (before the model has written anything)."""
    items = []
    for paper in answer.retrieved[:FOUND_SHOWN]:
        passage = paper.passages[0].text if paper.passages else paper.paper.abstract
        opening = split_sentences(passage)[0] if passage else ""
        items.append(
            f'<li><span class="rag-title">{inert_html(_one_line(paper.title))}</span>'
            f' <span class="rag-found-text">{inert_html(_one_line(opening))}</span></li>'
        )
    if not items:
        return ""
    return f'<div class="rag-found"><div class="rag-sources-heading">Reading</div><ol>{"".join(items)}</ol></div>'


def streaming_message(raw_text: str) -> str:
    """The answer's words while it is written (the checked answer replaces them)."""
    return inert_markdown(raw_text) + CURSOR


def question_message(question: str) -> str:
    """The user's question as its chat bubble shows it (Markdown, made inert)."""
    return inert_markdown(question)


def status_message(text: str) -> str:
    return f'<span class="rag-status">{inert_html(text)}</span>'


def error_message(text: str) -> str:
    return f'<span class="rag-error-tag">Error</span> **{inert_html(text)}**'


# --- the first screen ---------------------------------------------------------------

_TITLE_NOISE = STOPWORDS | {
    "learning", "model", "models", "towards", "toward", "large", "new", "based", "deep",
    "neural", "network", "networks", "language", "via", "case", "understanding", "exploring",
    "analysis", "evaluating", "representation", "representations", "its", "how", "what", "do",
}
_GENERIC = {"pre", "trained", "scale", "large", "multi", "efficient", "simple", "effective", "improving", "towards"}


_GOOD_PAIRS = {"language models", "representation learning", "neural networks"}
TOPIC_SAMPLE = 5000


def frequent_topics(titles: Iterable[str], n: int = 8) -> list[str]:
    """Most frequent two-word phrases (and then words) of the titles: what the corpus covers."""
    pairs: Counter[str] = Counter()
    singles: Counter[str] = Counter()
    for title in titles:
        tokens = words(title)
        seen_pairs = {
            f"{a} {b}"
            for a, b in zip(tokens, tokens[1:])
            if a not in STOPWORDS and b not in STOPWORDS and not (a in _GENERIC or b in _GENERIC)
            and not (a in _TITLE_NOISE and b in _TITLE_NOISE)
            or f"{a} {b}" in _GOOD_PAIRS
        }
        pairs.update(seen_pairs)
        singles.update({t for t in tokens if t not in _TITLE_NOISE | _GENERIC and len(t) > 3 and not t.isdigit()})
    topics = [p for p, count in pairs.most_common(n) if count >= 3]
    for word, count in singles.most_common():
        if len(topics) >= n or count < 3:
            break
        if not any(word in topic.split() for topic in topics):
            topics.append(word)
    return topics[:n]


def corpus_description(titles: Sequence[str], collection: str) -> str:
    """What the page's collection holds (said again when another collection is picked)."""
    # Topics from at most TOPIC_SAMPLE evenly spaced titles: all 100k took 2.2 s of the page's start.
    topics = frequent_topics(titles[:: max(1, len(titles) // TOPIC_SAMPLE)])
    covered = f" Frequent topics in their titles: {', '.join(topics)}." if topics else ""
    return (
        f"Ask questions about **{len(titles):,} research-paper abstracts** (collection "
        f"*{collection}*).{covered}\n\n"
        "Every answer is a few sentences, each checked against the abstract sentences it cites as [n]: "
        "click [n] to see that evidence (what the answer rests on is highlighted), or a source to read its "
        "abstract. When the abstracts do not answer a question, the assistant says so and lists the closest papers."
    )


# --- the model panel -----------------------------------------------------------------


def model_description(llm: ChatLLM) -> str:
    """Which model answers: the embedded one (by its description, which names it) on
    the server this app started, or a model at an external endpoint."""
    if llm.embedded:
        kind, name, where = "Embedded local model, started by this app", llm.description, "Served at"
    else:
        kind, name, where = "External OpenAI-compatible endpoint", llm.model, "Endpoint"
    endpoint = f"<br>{where}: <code>{html.escape(llm.base_url)}</code>" if llm.base_url else ""
    return f'<div class="rag-model"><b>{kind}</b><br>Model: <code>{html.escape(name)}</code>{endpoint}</div>'


def status_badge(status: str) -> str:
    status = status or "unknown"
    if status == "ready":
        css, text = "ok", "Ready"
    elif status == "starting":
        css, text = "wait", "Starting… (loading the model; questions wait until it is ready)"
    elif status.startswith("failed"):
        css, text = "bad", "Failed: " + status.partition(":")[2].strip()
    elif status == "stopped":
        css, text = "bad", "Stopped"
    elif status == "external":
        css, text = "ok", "External endpoint (not monitored)"
    else:
        css, text = "ok", status
    first_line = text.splitlines()[0] if text else text
    detail = text[len(first_line):].strip()
    more = f'<pre class="rag-status-detail">{html.escape(detail)}</pre>' if detail else ""
    return (
        f'<div class="rag-llm-status rag-{css}" data-status="{html.escape(status.split(":")[0])}">'
        f"<span class=\"rag-dot\"></span> Model status: {html.escape(first_line)}</div>{more}"
    )




# --- uploads ------------------------------------------------------------------------
SKIPPED_SHOWN = 5  # skipped entries named in an upload's summary; the rest are counted


def upload_summary(file_name: str, papers: int, skipped: Sequence[str]) -> str:
    """What an uploaded file holds: papers found, entries skipped (the first few named)."""
    lines = [f"<b>{papers:,}</b> paper{'s' if papers != 1 else ''} found in {inert_html(file_name)}"]
    if skipped:
        named = "".join(f"<li>{inert_html(entry)}</li>" for entry in skipped[:SKIPPED_SHOWN])
        more = len(skipped) - SKIPPED_SHOWN
        tail = f"<li>… and {more:,} more</li>" if more > 0 else ""
        lines.append(f"{len(skipped):,} skipped:<ul>{named}{tail}</ul>")
    if not papers:
        lines.append("Nothing can be added from this file.")
    return f'<div class="rag-upload" id="rag-upload-summary">{"<br>".join(lines)}</div>'


def upload_error(message: str) -> str:
    return f'<div class="rag-upload rag-error" id="rag-upload-summary">⚠️ {inert_html(message)}</div>'


def upload_done(collection: str, report: IngestReport) -> str:
    return (
        f'<div class="rag-upload rag-done" id="rag-upload-summary">✓ Collection <b>{inert_html(collection)}</b>: '
        f"{inert_html(report.summary())} Questions now search it when it is the chosen collection.</div>"
    )
