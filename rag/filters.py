"""Metadata filters on retrieval: a year range, an author substring, a category.

A filter narrows the papers *before* the top k is taken, on both sides of the
hybrid search: Chroma gets a ``where`` clause (:meth:`PaperFilter.chroma_where`)
and the lexical side scores only the rows of the matching papers, which the
catalog finds (:meth:`rag.catalog.Catalog.paper_ids_matching`). Both sides
express the same predicate, so fusion never sees a paper the filter excludes.
"""

from __future__ import annotations

from dataclasses import dataclass

from rag.errors import InvalidQuestionError

# The metadata key that flags a chunk's paper as being in a category (lower case),
# e.g. "category:cs.cl". Flags rather than a list: plain keys filter in every Chroma.
CATEGORY_KEY = "category:{}"


def _year(label: str, value: object) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(float(value))
    except (TypeError, ValueError, OverflowError):
        raise InvalidQuestionError(f"the {label} filter {value!r} is not a year") from None


def category_keys(categories: tuple[str, ...]) -> list[str]:
    """Every category and its archive ("cs.CL" -> "cs.cl", "cs"), lower case."""
    keys = []
    for category in categories:
        category = category.strip().lower()
        if category:
            keys.append(category)
            if "." in category:
                keys.append(category.split(".", 1)[0])
    return sorted(set(keys))


@dataclass(frozen=True)
class PaperFilter:
    """Which papers an answer or a search may use; empty fields do not filter."""

    year_from: int | None = None
    year_to: int | None = None
    author: str = ""  # case-insensitive substring of the authors list
    category: str = ""  # "cs.CL" (exact) or "cs" (the archive), case-insensitive

    def __post_init__(self) -> None:
        object.__setattr__(self, "author", " ".join(self.author.split()))
        object.__setattr__(self, "category", self.category.strip())
        if self.year_from is not None and self.year_to is not None and self.year_from > self.year_to:
            raise InvalidQuestionError(f"the year range {self.year_from}-{self.year_to} is empty: the first year is after the last")

    @classmethod
    def of(
        cls, year_from: object = None, year_to: object = None, author: str | None = None, category: str | None = None
    ) -> PaperFilter | None:
        """The filter from optional fields as any front-end has them (years as numbers or text,
        "" or None when unset); None when none is set. A year that is not one is an
        InvalidQuestionError naming the field."""
        years = [_year(label, value) for label, value in (("first year", year_from), ("last year", year_to))]
        found = cls(year_from=years[0], year_to=years[1], author=str(author or ""), category=str(category or ""))
        return found or None

    @classmethod
    def with_year_range(cls, years: str | None, author: str | None = None, category: str | None = None) -> PaperFilter | None:
        """The same with the years written as one range: "2019", "2019-2021", "2019-" or "-2021"."""
        year_from = year_to = None
        if years:
            first, dash, last = years.partition("-")
            if not all(part.strip().isdigit() for part in (first, last) if part.strip()):
                raise InvalidQuestionError(f"years {years!r}: use YEAR, FROM-TO, FROM- or -TO (e.g. 2019-2021)")
            year_from = first.strip() or None
            year_to = last.strip() or (None if dash else year_from)
        return cls.of(year_from, year_to, author, category)

    def __bool__(self) -> bool:
        return self.year_from is not None or self.year_to is not None or bool(self.author) or bool(self.category)

    def describe(self) -> str:
        """"years 2019-2021, author 'Hinton', category cs.CL"."""
        parts = []
        if self.year_from is not None or self.year_to is not None:
            parts.append(f"years {self.year_from or '…'}-{self.year_to or '…'}")
        if self.author:
            parts.append(f"author {self.author!r}")
        if self.category:
            parts.append(f"category {self.category}")
        return ", ".join(parts)

    def chroma_where(self, author_paper_ids: list[str] | None) -> dict | None:
        """The filter as a Chroma ``where`` clause on chunk metadata. Chroma has no
        substring test on metadata, so the author part arrives as the ids of the
        papers the catalog found for it."""
        clauses: list[dict] = []
        if self.year_from is not None or self.year_to is not None:
            clauses.append({"year": {"$gte": self.year_from or 1}})  # 0 = unknown year
        if self.year_to is not None:
            clauses.append({"year": {"$lte": self.year_to}})
        if self.category:
            clauses.append({CATEGORY_KEY.format(self.category.lower()): True})
        if self.author:
            clauses.append({"paper_id": {"$in": author_paper_ids or []}})
        if not clauses:
            return None
        return clauses[0] if len(clauses) == 1 else {"$and": clauses}
