"""Plain-text tables that fit the terminal (80 columns included) for every command's output.

One renderer for `evaluate`, `report`, `benchmark`, `list`, `traces`...: columns are described
once (:class:`Column`), cells are formatted once, and the layout adapts to the width:

1. **wide**: every column, headers wrapped onto two lines at a space when that saves width;
2. **narrow**: columns with the highest ``drop`` rank are left out (a note names them; the full
   figures are in ``--json`` / CSV, which never go through this module);
3. **stacked**: when even the ``drop=0`` columns do not fit, one block per row
   (``label`` then ``header value`` pairs wrapped to the width).

The width is :func:`terminal_width`: ``$COLUMNS`` when set, else the terminal's, else 80 (so
piped output fits an ordinary terminal too). Nothing here uses rich: the output is predictable
text, the same in a terminal, a pipe and a test.

Usage::

    cols = [Column("policy", "policy", align="left", drop=0),
            Column("objective", "objective", "{:+.4f}", drop=0),
            Column("p95_max_ms", "max p95 ms", "{:.0f}", drop=2)]
    print_table(rows, cols, title="...", notes=["..."], more="--json for all columns")
"""
from __future__ import annotations

import math
import re
import shutil
import sys
import textwrap
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TextIO

#: Space between two columns.
GAP = "  "


@dataclass(frozen=True)
class Column:
    """One table column.

    key: the row mapping's key. header: its title (a space lets it wrap onto two lines).
    fmt: a ``str.format`` pattern or a callable value -> str; None/NaN/inf print as ``-``.
    drop: 0 = always shown; when the table is too wide the highest ranks go first (ties: the
    rightmost first). align: ``right`` for numbers, ``left`` for names. wrap: a free-text column
    (shown last) whose cells wrap onto more lines rather than widen the table.
    """

    key: str
    header: str
    fmt: str | Callable[[Any], str] = "{}"
    drop: int = 1
    align: Literal["left", "right"] = "right"
    wrap: bool = False  # text that may wrap onto more lines (as the last column) before dropping

    def cell(self, row: Mapping[str, Any]) -> str:
        return format_value(self.fmt, row.get(self.key))


def format_value(fmt: str | Callable[[Any], str], v: Any) -> str:
    """``v`` through ``fmt``; missing and non-finite numbers as ``-``; ``{:d}`` takes floats."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "-"
    if callable(fmt):
        return str(fmt(v))
    if fmt.endswith("d}") and isinstance(v, float):
        v = int(round(v))
    return fmt.format(v)


def terminal_width(default: int = 80) -> int:
    """``$COLUMNS`` if set, else the terminal's width, else ``default`` (piped output)."""
    return max(20, shutil.get_terminal_size((default, 24)).columns)


def _header_lines(header: str, cell_w: int = 0) -> tuple[str, str]:
    """The header on one line if it is no wider than the cells (``cell_w``), else split at the
    space that makes the column narrowest."""
    best = (header, "")
    if len(header) <= cell_w:
        return best
    words = header.split(" ")
    for i in range(1, len(words)):
        a, b = " ".join(words[:i]), " ".join(words[i:])
        if max(len(a), len(b)) < max(len(best[0]), len(best[1])):
            best = (a, b)
    return best


def _layout(columns: Sequence[Column], cells: list[list[str]]) -> tuple[list[tuple[str, str]], list[int]]:
    cell_w = [max((len(r[i]) for r in cells), default=0) for i in range(len(columns))]
    heads = [_header_lines(c.header, w) for c, w in zip(columns, cell_w)]
    return heads, [max(len(h[0]), len(h[1]), w) for h, w in zip(heads, cell_w)]


def _pad(s: str, w: int, align: str) -> str:
    return s.rjust(w) if align == "right" else s.ljust(w)


def _wrap_cells(columns: Sequence[Column], cells: list[list[str]], width: int) -> list[list[str]]:
    """Rows whose ``wrap`` cells are split into lines that keep the table within ``width``
    (each physical line a row; continuation lines blank elsewhere). Unchanged when nothing wraps
    or the room left is under 16 characters."""
    wi = [i for i, c in enumerate(columns) if c.wrap]
    if not wi or _grid_width(columns, cells) <= width:
        return cells
    i = wi[-1]
    others = [r[:i] + [""] + r[i + 1:] for r in cells]
    room = width - _grid_width(columns, others) + len(_header_lines(columns[i].header)[0])
    heads = _header_lines(columns[i].header, room)
    room = max(room, len(heads[0]), len(heads[1]))
    if room < 16:
        return cells
    out: list[list[str]] = []
    for r in cells:
        parts = textwrap.wrap(r[i], width=room, break_on_hyphens=False) or [""]
        out.append(r[:i] + [parts[0]] + r[i + 1:])
        out += [["" for _ in r[:i]] + [p] + ["" for _ in r[i + 1:]] for p in parts[1:]]
    return out


def _grid(columns: Sequence[Column], cells: list[list[str]]) -> list[str]:
    heads, widths = _layout(columns, cells)
    lines = []
    if any(h[1] for h in heads):
        lines.append(GAP.join(_pad(h[0] if h[1] else "", w, c.align)
                              for h, w, c in zip(heads, widths, columns)).rstrip())
    lines.append(GAP.join(_pad(h[1] or h[0], w, c.align) for h, w, c in zip(heads, widths, columns)).rstrip())
    lines.append(GAP.join("-" * w for w in widths))
    lines += [GAP.join(_pad(s, w, c.align) for s, w, c in zip(r, widths, columns)).rstrip() for r in cells]
    return lines


def _grid_width(columns: Sequence[Column], cells: list[list[str]]) -> int:
    widths = _layout(columns, cells)[1]
    return sum(widths) + len(GAP) * (len(widths) - 1)


def _stacked(columns: Sequence[Column], cells: list[list[str]], width: int) -> list[str]:
    """One block per row: the first column's value, then ``header value`` pairs wrapped."""
    lines: list[str] = []
    for r in cells:
        lines.append(r[0])
        pairs = [f"{c.header} {v}" for c, v in zip(columns[1:], r[1:])]
        lines += textwrap.wrap("; ".join(pairs), width=width, initial_indent="  ",
                               subsequent_indent="  ", break_on_hyphens=False)
    return lines


def format_table(rows: Iterable[Mapping[str, Any]], columns: Sequence[Column], *,
                 width: int | None = None, title: str | None = None, notes: Iterable[str] = (),
                 more: str | None = None) -> str:
    """The table as text no wider than ``width`` (default :func:`terminal_width`).

    ``title`` and ``notes`` are wrapped to the width; when columns had to be left out a note
    ``not shown at W columns: a, b (MORE)`` names them, ``more`` saying where to find them.
    Raises ValueError for an empty ``columns``.
    """
    if not columns:
        raise ValueError("a table needs at least one column")
    width = width or terminal_width()
    rows = list(rows)
    cells = [[c.cell(r) for c in columns] for r in rows]
    shown = list(range(len(columns)))
    # Drop order: highest rank first, rightmost first among equals; rank 0 never.
    order = sorted((i for i, c in enumerate(columns) if c.drop > 0), key=lambda i: (-columns[i].drop, -i))
    dropped: list[int] = []

    def fitted() -> tuple[list[Column], list[list[str]]]:
        cols = [columns[i] for i in shown]
        return cols, _wrap_cells(cols, [[r[i] for i in shown] for r in cells], width)

    while _grid_width(*fitted()) > width and order:
        i = order.pop(0)
        shown.remove(i)
        dropped.append(i)
    out: list[str] = []
    if title:
        out += textwrap.wrap(title, width=width, break_on_hyphens=False)
    cols, sub = fitted()
    if _grid_width(cols, sub) <= width:
        out += _grid(cols, sub)
    else:  # even the essential columns are too wide: every column, stacked
        out += _stacked(columns, cells, width)
        dropped = []
    if dropped:
        names = ", ".join(columns[i].header for i in sorted(dropped))
        note = f"not shown at {width} columns: {names}" + (f" ({more})" if more else "")
        notes = [*notes, note]
    for n in notes:
        out += textwrap.wrap(n, width=width, break_on_hyphens=False) or [""]
    return "\n".join(out)


def print_table(rows: Iterable[Mapping[str, Any]], columns: Sequence[Column], *,
                file: TextIO | None = None, **kw: Any) -> None:
    """:func:`format_table` printed to ``file`` (default stdout)."""
    print(format_table(rows, columns, **kw), file=file or sys.stdout)


def format_pairs(pairs: Iterable[tuple[str, str]], *, width: int | None = None,
                 title: str | None = None) -> str:
    """A two-column ``label  value`` block (summaries); long values wrap under themselves."""
    width = width or terminal_width()
    pairs = list(pairs)
    lw = min(max((len(a) for a, _ in pairs), default=0), max(10, width // 2))
    out = textwrap.wrap(title, width=width, break_on_hyphens=False) if title else []
    for a, b in pairs:
        wrapped = textwrap.wrap(str(b), width=max(10, width - lw - len(GAP)), break_on_hyphens=False) or [""]
        out.append(f"{a.ljust(lw)}{GAP}{wrapped[0]}".rstrip())
        out += [f"{'':{lw}}{GAP}{w}" for w in wrapped[1:]]
    return "\n".join(out)


def compact_config(label: str) -> str:
    """A configuration label with repeats counted: ``1g:b5,1g:b5,1g:b5`` -> ``1g:b5 x3``,
    ``2g:b7,1g:b5,1g:b5`` -> ``2g:b7,1g:b5 x2`` (display only; the CLI takes the long form)."""
    items = [x for x in str(label).split(",") if x]
    out: list[str] = []
    i = 0
    while i < len(items):
        j = i
        while j < len(items) and items[j] == items[i]:
            j += 1
        out.append(items[i] + (f" x{j - i}" if j - i > 1 else ""))
        i = j
    return ",".join(out)


def idle_slices(label: str, variant_share: dict[str, float] | None, served: int | float = 1) -> list[str]:
    """The slices of configuration ``label`` (``4g:b7,3g:b5``) whose variant served no request
    this interval (its ``variant_share`` is 0) -- capacity that only costs reconfigurations.
    Empty when nothing was served at all (then no slice is singled out)."""
    if not served or not variant_share:
        return []
    return [x for x in str(label).split(",") if x and float(variant_share.get(x.split(":")[-1], 0.0)) <= 0.0]


_RUN_STAMP = re.compile(r"__\d{8}-\d{6}$|__\d{9,}$")


def short_name(spec: str) -> str:
    """A policy spec as a short name: registry names unchanged; a path by its folder's name
    (``checkpoints/efficientnet`` -> ``efficientnet``, ``runs/x/model.zip`` -> ``x``) without
    a run folder's time stamp (``eff__ppo__0__20261130-101500`` -> ``eff__ppo__0``)."""
    s = str(spec).strip().rstrip("/\\")
    if "/" in s or "\\" in s or s.endswith(".zip"):
        p = Path(s)
        s = p.parent.name if p.suffix == ".zip" and p.stem in ("model", "best_model", "final_model") else p.stem \
            if p.suffix == ".zip" else p.name
    s = _RUN_STAMP.sub("", s)
    return re.sub(r"[^A-Za-z0-9_.+-]+", "_", s).strip("._") or "policy"


def short_names(specs: Iterable[str]) -> dict[str, str]:
    """:func:`short_name` of each spec, made unique (``name``, ``name_2``...) in order."""
    out: dict[str, str] = {}
    used: set[str] = set()
    for spec in specs:
        base = short_name(spec)
        cand, k = base, 2
        while cand in used:
            cand, k = f"{base}_{k}", k + 1
        used.add(cand)
        out[spec] = cand
    return out


__all__ = ["Column", "GAP", "compact_config", "idle_slices", "format_pairs", "format_table", "format_value", "print_table",
           "short_name", "short_names", "terminal_width"]
