"""A report is one list of blocks, rendered to HTML and to Markdown by the same code.

Sections are built once (:mod:`bayesprune.report.build`) as :class:`Heading`, :class:`Text`,
:class:`Facts`, :class:`Table` and :class:`Image` blocks; :func:`to_html` and :func:`to_markdown`
render them, so a section cannot say one thing in ``index.html`` and another in ``summary.md``.
"""
from __future__ import annotations

import html
from dataclasses import dataclass


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Text:
    text: str
    note: bool = False  # an explanatory note (smaller, grey in HTML)


@dataclass(frozen=True)
class Facts:
    pairs: tuple[tuple[str, object], ...]


@dataclass(frozen=True)
class Table:
    columns: tuple[str, ...]
    rows: tuple[tuple[object, ...], ...]
    empty: str = "none"  # what to say when there are no rows


@dataclass(frozen=True)
class Image:
    file: str
    alt: str


def to_html(blocks) -> str:
    return "\n".join(_html(block) for block in blocks)


def to_markdown(blocks) -> str:
    return "\n\n".join(_markdown(block) for block in blocks)


def _html(block) -> str:
    if isinstance(block, Heading):
        return f"<h{block.level}>{html.escape(block.text)}</h{block.level}>"
    if isinstance(block, Text):
        return f"<p class=\"note\">{html.escape(block.text)}</p>" if block.note else f"<p>{html.escape(block.text)}</p>"
    if isinstance(block, Facts):
        rows = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(str(v))}</td></tr>" for k, v in block.pairs)
        return f"<table class=\"facts\">{rows}</table>"
    if isinstance(block, Table):
        if not block.rows:
            return f"<p>{html.escape(block.empty)}</p>"
        head = "".join(f"<th>{html.escape(c)}</th>" for c in block.columns)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row) + "</tr>"
                       for row in block.rows)
        return f"<table><tr>{head}</tr>{body}</table>"
    if isinstance(block, Image):
        return f"<p><img src=\"{html.escape(block.file)}\" alt=\"{html.escape(block.alt)}\"></p>"
    raise TypeError(f"not a report block: {block!r}")


def _markdown(block) -> str:
    if isinstance(block, Heading):
        return "#" * block.level + " " + block.text
    if isinstance(block, Text):
        return f"*{block.text}*" if block.note else block.text
    if isinstance(block, Facts):
        return "\n".join(f"- **{k}**: {v}" for k, v in block.pairs)
    if isinstance(block, Table):
        return markdown_table(block.columns, block.rows) if block.rows else block.empty
    if isinstance(block, Image):
        return f"![{block.alt}]({block.file})"
    raise TypeError(f"not a report block: {block!r}")


def markdown_table(columns, rows) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)
