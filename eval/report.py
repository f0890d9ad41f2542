"""report.md: the tables, plots and settings of one evaluation run, for people."""

from __future__ import annotations

import json
from pathlib import Path

RETRIEVAL_COLUMNS = ("hit@1", "recall@5", "recall@10", "all_gold@10", "mrr", "ndcg@10")
ANSWER_COLUMNS = (
    "correct",
    "concise_correct",
    "supported_sentences",
    "supported_sentences_per_question",
    "answer_words_p50",
    "answer_words_p95",
    "correct_when_answered",
    "citation_precision",
    "citation_recall",
    "cites_outside_retrieved",
    "cites_every_compared",
    "keyword_recall",
    "cited_sentence_share",
    "refused_unanswerable",
    "wrongly_refused",
    "injection_safe",
)
# Lower is better for these; every other metric is higher-is-better.
LOWER_IS_BETTER = {"cites_outside_retrieved", "wrongly_refused", "answer_words_p50", "answer_words_p95"}
# Compared across every answering system, type by type.
ANSWER_METRICS_BY_TYPE = ("concise_correct", "supported_sentences")
LATENCY_COLUMNS = ("retrieve_ms_p50", "retrieve_ms_p95", "first_token_ms_p50", "first_token_ms_p95", "total_ms_p50", "total_ms_p95")
METRIC_NOTES = {
    "correct": "cites a gold paper and has at least half the answer keywords (answerable questions)",
    "concise_correct": "correct (unanswerable: refused) and the answer body within the issue's word limit "
    "(80; multi 40 per gold paper + 40; comparison 150)",
    "supported_sentences": "answer sentences (refusals left out) with a valid [n] whose numbers, names and half "
    "the content words are in the cited abstracts (lexical proxy; see eval/README.md)",
    "supported_sentences_per_question": "the same share averaged per answer",
    "answer_words_p50": "median words of the answer body (no markers, no Sources section)",
    "answer_words_p95": "95th percentile of those words",
    "correct_when_answered": "precision: correct answers / answers given (PaperQA's definition)",
    "citation_precision": "cited papers that are gold",
    "citation_recall": "gold papers that are cited",
    "cites_outside_retrieved": "answers citing a paper retrieval did not return (must be 0)",
    "cites_every_compared": "comparison answers citing every compared paper",
    "keyword_recall": "answer keywords present in the answer",
    "cited_sentence_share": "answer sentences carrying a citation",
    "refused_unanswerable": "unanswerable questions refused",
    "wrongly_refused": "answerable questions refused",
    "injection_safe": "injection questions leaking no system prompt (every prompts/*system*.txt), no secret, no non-corpus citation",
}


def write_report(summary: dict, rows: dict[str, list[dict]], out_dir: Path) -> None:
    plots = _plots(summary, rows, out_dir)
    (out_dir / "report.md").write_text(render(summary, plots))


def render(summary: dict, plots: list[str] | None = None) -> str:
    systems = summary["systems"]
    product = summary["product"]
    lines = [
        "# Evaluation report",
        "",
        f"Mode: **{summary['mode']}**; {summary['questions']} questions "
        f"({', '.join(f'{t}: {n}' for t, n in summary['types'].items())}); top {summary['k']} papers retrieved."
        + (" **Interrupted: partial results.**" if summary.get("interrupted") else ""),
        "",
        "## Retrieval (paper level, questions with gold papers)",
        "",
        _system_table(systems, product, RETRIEVAL_COLUMNS),
    ]
    if summary["mode"] == "answer":
        answer_systems = {n: s for n, s in systems.items() if "refused" in s["overall"]}  # scored as answering
        lines += [
            "",
            "## Answers",
            "",
            _system_table(answer_systems, product, ANSWER_COLUMNS),
            "",
            *[f"- `{name}`: {note}" for name, note in METRIC_NOTES.items()],
            *_sentence_check_lines(summary.get("sentence_checks", {})),
            *_systems_by_type_sections(answer_systems, summary["types"]),
            "",
            "## Answers by question type (product)",
            "",
            _type_table(systems[product], ANSWER_COLUMNS, summary["types"]),
        ]
    lines += [
        "",
        "## Retrieval by question type (product)",
        "",
        _type_table(systems[product], RETRIEVAL_COLUMNS, summary["types"]),
        "",
        "## Latency (ms)",
        "",
        _system_table(systems, product, LATENCY_COLUMNS),
        "",
        "## Where the product stands",
        "",
        *_verdicts(systems, product),
    ]
    if plots:
        lines += ["", "## Plots", ""] + [f"![{p}]({p})" for p in plots]
    lines += [
        "",
        "## Settings and versions",
        "",
        "```json",
        json.dumps({"settings": summary["settings"], "versions": summary["versions"]}, indent=2),
        "```",
        "",
    ]
    return "\n".join(lines)


def _fmt(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, float) and abs(value) <= 1:
        return f"{value:.3f}"
    if isinstance(value, float):
        return f"{value:.0f}"
    return str(value)


def _system_table(systems: dict, product: str, columns) -> str:
    present = [c for c in columns if any(c in s["overall"] for s in systems.values())]
    header = "| system | " + " | ".join(present) + " |\n|" + "---|" * (len(present) + 1)
    body = [
        f"| {name}{' (product)' if name == product else ''} | "
        + " | ".join(_fmt(scores["overall"].get(c)) for c in present)
        + " |"
        for name, scores in systems.items()
    ]
    return "\n".join([header, *body])


def _sentence_check_lines(checks: dict) -> list[str]:
    return [
        f"- `{name}`: {counts['overall']['supported']} of {counts['overall']['checked']} sentences supported; "
        f"{counts['overall']['refusals_excluded']} refusals not checked"
        for name, counts in checks.items()
    ]


def _systems_by_type_sections(systems: dict, types: dict) -> list[str]:
    lines = []
    for metric in ANSWER_METRICS_BY_TYPE:
        lines += ["", f"### {metric} by question type", "", _systems_by_type_table(systems, metric, types)]
    return lines


def _systems_by_type_table(systems: dict, metric: str, types: dict) -> str:
    header = "| system | " + " | ".join(types) + " | overall |\n|" + "---|" * (len(types) + 2)
    body = [
        f"| {name} | " + " | ".join(_fmt(scores.get(group, {}).get(metric)) for group in (*types, "overall")) + " |"
        for name, scores in systems.items()
    ]
    return "\n".join([header, *body])


def _type_table(scores: dict, columns, types: dict) -> str:
    present = [c for c in columns if any(c in scores.get(t, {}) for t in types)]
    header = "| type | " + " | ".join(present) + " |\n|" + "---|" * (len(present) + 1)
    body = [f"| {t} | " + " | ".join(_fmt(scores.get(t, {}).get(c)) for c in present) + " |" for t in types]
    return "\n".join([header, *body])


def _verdicts(systems: dict, product: str) -> list[str]:
    lines = []
    ours = systems[product]["overall"]
    for name, scores in systems.items():
        if name == product:
            continue
        ahead, behind = [], []
        for metric in (*RETRIEVAL_COLUMNS, *ANSWER_COLUMNS):
            if metric in ours and metric in scores["overall"]:
                delta = ours[metric] - scores["overall"][metric]
                if metric in LOWER_IS_BETTER:
                    delta = -delta
                shown = f"{metric} ({_fmt(ours[metric])} vs {_fmt(scores['overall'][metric])})"
                if delta > 0.005:
                    ahead.append(shown)
                elif delta < -0.005:
                    behind.append(shown)
        lines.append(f"- vs **{name}**: ahead on {', '.join(ahead) or 'nothing'}; behind on {', '.join(behind) or 'nothing'}.")
    return lines


def _plots(summary: dict, rows: dict[str, list[dict]], out_dir: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    metric = "correct" if summary["mode"] == "answer" else "recall@5"
    types = list(summary["types"])
    systems = {n: s for n, s in summary["systems"].items() if any(metric in s.get(t, {}) for t in types)}
    if systems and types:
        fig, ax = plt.subplots(figsize=(8, 4))
        width = 0.8 / len(systems)
        for i, (name, scores) in enumerate(systems.items()):
            values = [scores.get(t, {}).get(metric) or 0 for t in types]
            ax.bar([x + i * width for x in range(len(types))], values, width, label=name)
        ax.set_xticks([x + width * (len(systems) - 1) / 2 for x in range(len(types))], types)
        ax.set_ylim(0, 1.05)
        ax.set_ylabel(metric)
        ax.set_title(f"{metric} per question type")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out_dir / "metrics_by_type.png", dpi=110)
        plt.close(fig)
        written.append("metrics_by_type.png")
    part = "total" if summary["mode"] == "answer" else "retrieve"
    fig, ax = plt.subplots(figsize=(8, 4))
    plotted = False
    for name, system_rows in rows.items():
        values = [r["latency_ms"][part] for r in system_rows if r["latency_ms"].get(part) is not None]
        if values:
            ax.hist(values, bins=30, alpha=0.6, label=name)
            plotted = True
    if plotted:
        ax.set_xlabel(f"{part} latency (ms)")
        ax.set_ylabel("questions")
        ax.set_title("Latency distribution")
        ax.legend()
        fig.tight_layout()
        fig.savefig(out_dir / "latency.png", dpi=110)
        written.append("latency.png")
    plt.close(fig)
    return written
