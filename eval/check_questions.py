"""Check a question set against the corpus: every gold title exists, every
keyword is in a gold abstract, and the type counts.

    python -m eval.check_questions [eval/questions.jsonl] [--corpus data/papers.txt]
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

from eval.questions import QuestionSetError, check_against_corpus, load_questions
from rag.corpus import load_corpus
from rag.errors import CorpusError
from rag.settings import BUNDLED_CORPUS, PROJECT_ROOT


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Check a question set against the corpus.")
    parser.add_argument("questions", nargs="?", type=Path, default=PROJECT_ROOT / "eval" / "questions.jsonl")
    parser.add_argument("--corpus", type=Path, nargs="+", default=[BUNDLED_CORPUS])
    args = parser.parse_args(argv)
    try:
        questions = load_questions(args.questions)
        papers = load_corpus(args.corpus)
    except (QuestionSetError, CorpusError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    problems = check_against_corpus(questions, papers)
    for problem in problems:
        print(problem)
    counts = Counter(q.type for q in questions)
    print(f"{len(questions)} questions: " + ", ".join(f"{t} {n}" for t, n in sorted(counts.items())))
    print("OK" if not problems else f"{len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
