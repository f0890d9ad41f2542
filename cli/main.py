"""The `rag` command's subcommands and argument parsing.

Every failure a user can cause or meet (a bad corpus file, no index, an
unreachable server, a bad setting, Ctrl-C) ends in one readable line on stderr
and a non-zero exit code. Anything else is a bug: one line saying so, and the
traceback in a log file whose path that line gives.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import sys
import textwrap
from pathlib import Path

from rag.errors import InvalidRequestError, UserError, describe_bug
from rag.generation import Answer
from rag.pipeline import open_pipeline
from rag.service import PaperService, Request, checked_filter, checked_request
from rag.settings import DEFAULT_COLLECTION, Settings, load_settings

EXIT_USER_ERROR, EXIT_BUG, EXIT_REGRESSION, EXIT_INTERRUPTED = 1, 2, 3, 130


def _settings(args: argparse.Namespace) -> Settings:
    overrides = {}
    for name in (
        "top_k", "retrieval_mode", "chroma_url", "data_dir", "embedding_model",
        "llm_base_url", "llm_model", "local_model", "collection",
    ):  # fmt: skip
        value = getattr(args, name, None)
        if value is not None:
            overrides[name] = value
    return load_settings(**overrides)


def cmd_ingest(args: argparse.Namespace) -> int:
    from rag.corpus import ArxivSelection, read_corpus

    settings = _settings(args)
    if not args.paths and settings.storage.collection != DEFAULT_COLLECTION:
        raise UserError(f"name the files to ingest into collection {settings.storage.collection!r}")
    selection = ArxivSelection(
        categories=tuple(args.category or ()), since=args.since, until=args.until
    )
    loaded = read_corpus(args.paths or settings.storage.corpus_paths, selection)  # fails before the store is opened
    for line in loaded.report_lines():
        print(line, file=sys.stderr)
    if not loaded.papers:
        raise UserError("no papers to ingest: every entry was skipped or not selected (see above)")
    pipeline = open_pipeline(settings, retrieval=False, answering=False)
    report = pipeline.index.ingest(loaded.papers, progress=not args.quiet, keep_others=args.add)
    print(report.summary())
    return 0


def _request(settings: Settings, args: argparse.Namespace, question: str, history: list | None = None) -> Request:
    """The question with the --years/--author/--category options (and --k where there is one)."""
    return checked_request(
        settings, question, history or [], top_k=getattr(args, "k", None),
        years=args.years, author=args.author, category=args.category,
    )  # fmt: skip


def cmd_search(args: argparse.Namespace) -> int:
    service = PaperService.of(open_pipeline(_settings(args), answering=False))  # no index: said before the question
    result = service.search(_request(service.settings, args, args.question))
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        return 0
    for rank, paper in enumerate(result.papers, start=1):
        print(f"{rank}. {paper.paper.reference()}  (score {paper.score:.4f}{', named' if paper.named else ''})")
        if paper.passages:
            print(textwrap.indent(textwrap.fill(paper.passages[0].text, 96), "     "))
    return 0


def cmd_info(args: argparse.Namespace) -> int:
    info = open_pipeline(_settings(args), retrieval=False, answering=False).index.info()
    if args.json:
        print(json.dumps(info, indent=2))
    else:
        width = max(len(k) for k in info)
        for key, value in info.items():
            print(f"{key.replace('_', ' '):<{width}}  {value if value is not None else '-'}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from rag.check import check_index

    report = check_index(_settings(args))
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print("\n".join(report.lines()))
    return 0 if report.ok else EXIT_USER_ERROR


def cmd_collections(args: argparse.Namespace) -> int:
    from rag.collections import delete_collection, describe_collections

    settings = _settings(args)
    if args.delete:
        target = settings.for_collection(args.delete)
        index = open_pipeline(target, retrieval=False, answering=False).index
        delete_collection(settings, args.delete, index)
        print(f"deleted collection {args.delete!r}")
        return 0
    found = describe_collections(settings)
    if args.json:
        print(json.dumps([c.to_dict() for c in found], indent=2))
        return 0
    for info in found:
        built = f", built {info.built_at}" if info.built_at else ", not ingested yet"
        print(f"{info.name}: {info.papers} papers, {info.chunks} chunks{built}")
    return 0


def _print_streamed_answer(service: PaperService, request: Request) -> Answer:
    """Stream the answer's sentences as each passes its check, then its evidence and sources."""
    streamed: list[str] = []
    stream = service.ask_stream(request)
    for event in stream:
        if event.kind == "status" and sys.stderr.isatty():
            print(f"\r\033[K{event.text}", end="", file=sys.stderr, flush=True)
        elif event.kind == "retrieved" and sys.stderr.isatty():
            titles = "; ".join(p.title for p in event.answer.retrieved[:3])
            print(f"\r\033[KFound: {titles[:160]}", file=sys.stderr, flush=True)
        elif event.kind == "token":
            if not streamed and sys.stderr.isatty():
                print("\r\033[K", end="", file=sys.stderr, flush=True)
            streamed.append(event.text)
            print(event.text, end="", flush=True)
    answer = stream.answer
    if streamed:
        print()
    if not streamed or answer.text.strip() != "".join(streamed).strip():
        if streamed:
            print("\nChecked answer:")
        print(answer.text)
    if answer.cited:  # the evidence under the answer, then the cited papers (as in --format markdown)
        print("\n" + answer.evidence_and_sources())
    return answer


def cmd_ask(args: argparse.Namespace) -> int:
    settings = _settings(args)
    request = _request(settings, args, args.question)  # before the model starts
    with open_pipeline(settings) as pipeline:
        service = PaperService.of(pipeline)
        if args.format == "text":
            answer = _print_streamed_answer(service, request)
        else:
            answer = service.ask(request)
            exported = service.export_answer(answer, args.format)
            if exported:
                print(exported.rstrip("\n"))
            else:  # BibTeX of an answer citing nothing: stdout stays empty, an empty .bib
                print("the answer cites no papers: no BibTeX entries", file=sys.stderr)
    return 0 if answer.error is None or answer.generated else EXIT_USER_ERROR


def cmd_compare(args: argparse.Namespace) -> int:
    settings = _settings(args)
    with open_pipeline(settings) as pipeline:
        service = PaperService.of(pipeline)
        request = service.comparison_request(args.papers, args.aspects, args.collection)
        stream = service.compare_stream(request)
        shown = 0
        for event in stream:  # progress on a terminal: each cell as it passes
            if event.kind == "status" and sys.stderr.isatty():
                print(f"\r\033[K{event.text}", end="", file=sys.stderr, flush=True)
            elif event.kind == "cell" and sys.stderr.isatty() and event.answer.table:
                for cell in event.answer.table.cells[shown:]:
                    print(f"\r\033[K[{cell.paper}] {cell.aspect}: {cell.text}", file=sys.stderr, flush=True)
                shown = len(event.answer.table.cells)
        answer = stream.answer
    if answer.table is None:  # the model failed: the reason and the passages
        print(answer.text)
        return EXIT_USER_ERROR
    output = service.export_table(answer, args.format)
    if args.out:
        args.out.write_text(output, encoding="utf-8")
        print(f"wrote {args.out}", file=sys.stderr)
    else:
        print(output.rstrip("\n"))
    return 0


def cmd_chat(args: argparse.Namespace) -> int:
    history = []
    settings = _settings(args)
    checked_filter(years=args.years, author=args.author, category=args.category)  # a bad --years: before the model starts
    with open_pipeline(settings) as pipeline:
        service = PaperService.of(pipeline)
        print("Ask about the papers; an empty line or Ctrl-D ends the chat.")
        while True:
            try:
                question = input("\n> ").strip()
            except EOFError:
                break
            if not question:
                break
            try:
                request = _request(settings, args, question, history)
            except InvalidRequestError as err:  # e.g. too long: said, and the chat goes on
                print(err)
                continue
            answer = _print_streamed_answer(service, request)
            if answer.keeps_context:
                history.append(answer.as_turn())
    return 0


def cmd_ui(args: argparse.Namespace) -> int:
    from serve.app import serve_page

    settings = _settings(args)
    overrides = {k: v for k, v in (("ui_host", args.host), ("ui_port", args.port)) if v is not None}
    serve_page(settings.changed(**overrides))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from serve.app import serve_page_and_api

    settings = _settings(args)
    overrides = {k: v for k, v in (("serve_host", args.host), ("serve_port", args.port)) if v is not None}
    serve_page_and_api(settings.changed(**overrides))
    return 0


def cmd_mcp(args: argparse.Namespace) -> int:
    from serve.mcp import HTTP_HOST, HTTP_PORT, serve_mcp

    if not args.http and (args.host or args.port is not None):
        raise UserError("--host and --port are for --http (over stdio the client starts the server)")
    address = (args.host or HTTP_HOST, HTTP_PORT if args.port is None else args.port) if args.http else None
    serve_mcp(_settings(args), address)
    return 0


def cmd_llm_server(args: argparse.Namespace) -> int:
    from serve.app import serve_embedded_model

    serve_embedded_model(_settings(args), host=args.host, port=args.port)
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    from eval import harness
    from eval.questions import default_questions, load_questions, select_questions

    settings = _settings(args)
    if args.mode == "table":
        return _eval_tables(settings, args)
    questions = load_questions(args.questions or default_questions(args.split))  # a bad file stops here, before any run
    questions = select_questions(questions, args.types, args.split, args.per_type, args.limit)
    answering = args.mode == "answer"
    with open_pipeline(settings, answering=answering) as pipeline:
        spec = harness.make_run(
            pipeline, args.mode, args.k, with_starter=answering and not args.skip_starter
        )
        summary = harness.run(spec, questions, Path(args.out))
    overall = summary["systems"][harness.PRODUCT]["overall"]
    shown = ("recall@5", "mrr", "correct", "citation_precision", "refused_unanswerable", "total_ms_p50")
    print(
        f"{summary['questions']} questions -> {args.out}/report.md: "
        + ", ".join(f"{k} {overall[k]:.3f}" if overall[k] <= 1 else f"{k} {overall[k]:.0f}" for k in shown if k in overall)
    )
    if summary["interrupted"]:
        return EXIT_INTERRUPTED
    if args.check:
        from eval.regression import check

        fallen = check(summary, args.check, args.tolerance)
        if fallen:
            print(f"regression against {args.check} (tolerance {args.tolerance}):", file=sys.stderr)
            for line in fallen:
                print(f"  {line}", file=sys.stderr)
            return EXIT_REGRESSION
        print(f"no metric fell more than {args.tolerance} below {args.check}")
    return 0


def _eval_tables(settings: Settings, args: argparse.Namespace) -> int:
    from eval.tables import PRODUCT, TABLE_QUESTIONS, load_table_questions, run_tables

    questions = load_table_questions(args.questions or TABLE_QUESTIONS, args.split)[: args.limit]
    with open_pipeline(settings) as pipeline:
        summary = run_tables(pipeline, questions, Path(args.out))
    for system, scores in summary["systems"].items():
        shown = ("cell_support", "cell_correctness", "not_stated_precision", "not_stated_recall", "total_ms_p50")
        print(f"{system}: " + ", ".join(f"{k} {scores[k]:.3f}" if scores[k] is not None and scores[k] <= 1 else f"{k} {scores[k]}" for k in shown))
    print(f"{summary['questions']} tables -> {args.out}/report.md ({PRODUCT} beside the no-model baseline)")
    return 0


def _date(text: str) -> datetime.date:
    try:
        return datetime.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date like 2023-01-31") from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rag",
        description="Grounded question answering over paper abstracts. "
        "Settings come from RAG_* environment variables or rag.toml (see docs/settings.md).",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log progress details")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def store_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--data-dir", dest="data_dir", type=Path, help="folder of the embedded store")
        p.add_argument("--chroma-url", dest="chroma_url", help="use a Chroma server at this URL")
        p.add_argument("--collection", help=f"the collection to use (default: the collection setting, {DEFAULT_COLLECTION!r})")

    def filter_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--years", help="only papers from these years: 2021, 2019-2021, 2019- or -2021")
        p.add_argument("--author", help="only papers with an author containing this text (any case)")
        p.add_argument("--category", help="only papers in this category (cs.CL) or archive (cs)")

    ingest = commands.add_parser(
        "ingest",
        help="index corpus files (default: the bundled corpus)",
        description="Index papers into Chroma. Unchanged papers are not re-embedded, "
        "removed ones are deleted; a failure leaves the previous index as it was.",
    )
    ingest.add_argument("paths", nargs="*", type=Path, help=".txt, .jsonl (incl. arXiv metadata), .csv, .bib or .ris files")
    ingest.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    ingest.add_argument(
        "--add", action="store_true", help="keep the collection's other papers (default: the files replace its contents)"
    )
    ingest.add_argument(
        "--category", action="append", help="only papers in this category or archive (repeatable; e.g. cs.CL, cs)"
    )
    ingest.add_argument("--since", type=_date, help="only papers first published on or after this date (YYYY-MM-DD)")
    ingest.add_argument("--until", type=_date, help="only papers first published on or before this date (YYYY-MM-DD)")
    store_options(ingest)
    ingest.set_defaults(run=cmd_ingest)

    search = commands.add_parser("search", help="rank papers for a question")
    search.add_argument("question")
    search.add_argument("--k", type=int, default=None, help="papers to return (default: top_k setting)")
    search.add_argument("--mode", dest="retrieval_mode", choices=["hybrid", "dense", "bm25"])
    search.add_argument("--json", action="store_true", help="machine-readable output")
    filter_options(search)
    store_options(search)
    search.set_defaults(run=cmd_search)

    info = commands.add_parser("info", help="what is indexed, with which model, where")
    info.add_argument("--json", action="store_true")
    store_options(info)
    info.set_defaults(run=cmd_info)

    ask = commands.add_parser(
        "ask",
        help="answer a question with cited papers",
        description="Answer from the abstracts, streaming, then list the cited papers. Uses "
        "RAG_LLM__BASE_URL if set, else starts the embedded local model.",
    )
    ask.add_argument("question")
    from rag.export import EXPORT_FORMATS

    ask.add_argument(
        "--format",
        choices=["text", *EXPORT_FORMATS],
        default="text",
        help="text: streamed as it is written (default); markdown: the answer and its sources list; "
        "json: the answer as data (the shape of evaluation results); bibtex: entries for the cited papers",
    )
    ask.add_argument("--json", dest="format", action="store_const", const="json", help="the same as --format json")
    filter_options(ask)
    store_options(ask)
    ask.set_defaults(run=cmd_ask)

    compare = commands.add_parser(
        "compare",
        help="compare papers in a table, every cell cited",
        description="Put 2-6 papers side by side (by title, id, or a name only one paper carries, "
        "like DiffCSE): a row per aspect, each cell a phrase from one sentence of that paper's abstract, "
        "or 'not stated in the abstract'; then the key differences.",
    )
    compare.add_argument("papers", nargs="+", help="the papers, each quoted")
    compare.add_argument("--aspects", help='comma-separated rows, e.g. "training signal, languages covered" (default: problem, approach, data / benchmarks, main result, limitation)')
    compare.add_argument(
        "--format", choices=["text", "markdown", "csv", "json"], default="text",
        help="text: the table, its evidence and sources (default); markdown: the same as a file; csv: the table for a "
        "spreadsheet; json: aspects, papers, cells (text, paper, source sentence, support) and differences",
    )
    compare.add_argument("--out", type=Path, help="write to this file instead of standard output")
    store_options(compare)
    compare.set_defaults(run=cmd_compare)

    chat = commands.add_parser("chat", help="interactive questions with follow-ups")
    filter_options(chat)
    store_options(chat)
    chat.set_defaults(run=cmd_chat)

    check = commands.add_parser(
        "check",
        help="check that an index is consistent (exit 1 with the problems if not)",
        description="Every paper complete, Chroma, BM25 and the catalog listing the same chunks, "
        "no Chroma collection without a build record. What an interrupted ingest left for the "
        "next one to delete is listed, not a failure.",
    )
    check.add_argument("--json", action="store_true")
    store_options(check)
    check.set_defaults(run=cmd_check)

    collections = commands.add_parser(
        "collections", help="list the collections with their counts, or delete one"
    )
    collections.add_argument("--json", action="store_true")
    collections.add_argument("--delete", metavar="NAME", help="delete this collection (its index only; never another)")
    store_options(collections)
    collections.set_defaults(run=cmd_collections)

    ui = commands.add_parser("ui", help="start the chat web UI (Gradio)")
    ui.add_argument("--host", help="listen address (default: ui_host setting, 127.0.0.1)")
    ui.add_argument("--port", type=int, help="port (default: ui_port setting, 7860)")
    store_options(ui)
    ui.set_defaults(run=cmd_ui)

    serve = commands.add_parser(
        "serve",
        help="the OpenAI-compatible API under /v1 and the chat page at /, in one process",
        description="Serve POST /v1/chat/completions (streamed or not; citations in a `citations` field), "
        "GET /v1/models (the collections), POST /v1/search, POST /v1/export, GET /healthz, and the page at /. "
        "Listening on anything but loopback needs RAG_SERVING__API_KEYS.",
    )
    serve.add_argument("--host", help="listen address (default: serve_host setting, 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default: serve_port setting, 8000)")
    store_options(serve)
    serve.set_defaults(run=cmd_serve)

    mcp = commands.add_parser(
        "mcp",
        help="serve the papers to AI agents over MCP (stdio, or --http)",
        description="An MCP server with the tools search_papers, ask, compare_papers, get_paper and "
        "list_collections, and each paper as paper://COLLECTION/ID. Over stdio (how desktop clients "
        "start it; see docs/mcp.md), or streamable HTTP at http://HOST:PORT/mcp with --http: loopback "
        "by default, and any other address needs RAG_SERVING__API_KEYS, as for `rag serve`.",
    )
    mcp.add_argument("--http", action="store_true", help="serve streamable HTTP instead of stdio")
    mcp.add_argument("--host", help="with --http: listen address (default 127.0.0.1)")
    mcp.add_argument("--port", type=int, help="with --http: port (default 8001; 0 = any free port)")
    store_options(mcp)
    mcp.set_defaults(run=cmd_mcp)

    llm_server = commands.add_parser(
        "llm-server", help="run the embedded local model as an OpenAI-compatible server"
    )
    llm_server.add_argument("--host", default="127.0.0.1")
    llm_server.add_argument("--port", type=int, default=8080)
    llm_server.set_defaults(run=cmd_llm_server)

    evaluate = commands.add_parser(
        "eval",
        help="score retrieval on a question set against baselines",
        description="Run a question set (JSON Lines, see eval/README.md) and write "
        "results.jsonl, summary.json and report.md to --out.",
    )
    evaluate.add_argument(
        "--questions", type=Path, help="question set (default: eval/questions-test.jsonl for --split test, else eval/questions.jsonl)"
    )
    evaluate.add_argument("--out", type=Path, required=True, help="output folder")
    evaluate.add_argument(
        "--mode",
        choices=["retrieval", "answer", "table"],
        default="retrieval",
        help="retrieval: no LLM, seconds; answer: the full pipeline with the configured LLM; table: comparison "
        "tables (default set eval/questions-tables.jsonl) beside the closest-sentence baseline",
    )
    evaluate.add_argument("--k", type=int, default=10, help="papers retrieved per question")
    evaluate.add_argument("--limit", type=int, help="only the first N questions")
    evaluate.add_argument("--types", help="comma-separated question types to keep")
    evaluate.add_argument("--per-type", dest="per_type", type=int, help="only the first N questions of each type")
    evaluate.add_argument("--split", help="keep questions whose split field has this value")
    evaluate.add_argument(
        "--skip-starter", action="store_true", help="answer mode: do not run the LlamaIndex starter baseline"
    )
    evaluate.add_argument("--check", type=Path, help="stored summary.json: exit 3 if a metric fell below it")
    evaluate.add_argument(
        "--tolerance", type=float, default=0.02, help="allowed drop per metric for --check (default 0.02)"
    )
    store_options(evaluate)
    evaluate.add_argument("--embedding-model", dest="embedding_model")
    evaluate.add_argument("--top-k", dest="top_k", type=int, help="papers retrieved for answering")
    evaluate.add_argument("--endpoint", dest="llm_base_url", help="OpenAI-compatible LLM endpoint")
    evaluate.add_argument("--llm-model", dest="llm_model", help="model name at the endpoint")
    evaluate.add_argument("--local-model", dest="local_model", help="embedded model when no endpoint")
    evaluate.set_defaults(run=cmd_eval)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(levelname)s %(message)s",
    )
    try:
        return args.run(args)
    except KeyboardInterrupt:
        print("interrupted; nothing half-written was kept", file=sys.stderr)
        return EXIT_INTERRUPTED
    except UserError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_USER_ERROR
    except Exception as err:  # a bug: one line here, the traceback in a log file
        print(f"error: {describe_bug(err, getattr(args, 'data_dir', None))}", file=sys.stderr)
        return EXIT_BUG


if __name__ == "__main__":
    sys.exit(main())
