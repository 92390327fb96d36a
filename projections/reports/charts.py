"""Charts drawn with matplotlib, headless: a `Figure` on the Agg/SVG canvases directly, never
pyplot (no global figure state, no display, safe in threads)."""

from __future__ import annotations

import io
from typing import Any

from matplotlib.dates import AutoDateLocator, ConciseDateFormatter, date2num
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator

from projections.reports.base import Chart

COLOURS = ("#1f6feb", "#d1242f", "#1a7f37", "#8250df")
SYMBOLS = {"EUR": "€", "USD": "$", "GBP": "£", "JPY": "¥", "CHF": "CHF ", "NOK": "kr ", "SEK": "kr ", "DKK": "kr "}


def money_axis(currency: str) -> FuncFormatter:
    symbol = SYMBOLS.get(currency.upper(), f"{currency} ")
    return FuncFormatter(lambda value, _pos: f"{symbol}{value:,.{0 if abs(value) >= 10_000 else 2}f}")


def render(chart: Chart, fmt: str) -> bytes:
    """The chart as PNG or SVG bytes."""
    figure = Figure(figsize=(10, 5.5), dpi=100, layout="constrained")
    left = figure.add_subplot()
    right = left.twinx() if any(s.axis == "right" for s in chart.series) else None
    handles: list[Any] = []
    for n, series in enumerate(chart.series):
        axes = right if series.axis == "right" and right is not None else left
        colour = COLOURS[n % len(COLOURS)]
        xs = date2num(series.xs)  # type: ignore[no-untyped-call]
        if series.kind == "bar":
            width = (chart.bar_width_minutes or 1) / 1440  # in days, matplotlib's date unit
            handles.append(axes.bar(xs, series.ys, width=width, align="edge", color=colour,
                                    alpha=0.6, label=series.label))  # fmt: skip
        elif series.kind == "step":
            (line,) = axes.step(xs, series.ys, where="post", color=colour, label=series.label)
            handles.append(line)
        else:
            (line,) = axes.plot(xs, series.ys, color=colour, label=series.label)
            handles.append(line)
    figure.suptitle(chart.title)
    left.set_xlabel(chart.x_label)
    left.set_ylabel(chart.y_label)
    left.yaxis.set_major_locator(MaxNLocator(integer=True))
    left.set_ylim(bottom=0)
    left.xaxis_date()
    locator = AutoDateLocator()  # type: ignore[no-untyped-call]
    left.xaxis.set_major_locator(locator)
    left.xaxis.set_major_formatter(ConciseDateFormatter(locator))  # type: ignore[no-untyped-call]
    left.grid(alpha=0.3)
    if right is not None:
        right.set_ylabel(chart.y2_label)
        right.set_ylim(bottom=0)
        if chart.currency:
            right.yaxis.set_major_formatter(money_axis(chart.currency))
    if not any(s.xs for s in chart.series):
        left.text(0.5, 0.5, "nothing to show yet", transform=left.transAxes, ha="center", va="center")
    if handles:
        left.legend(handles=handles, loc="upper left")
    out = io.BytesIO()
    figure.savefig(out, format=fmt, metadata={"Software": None} if fmt == "png" else {"Date": None})
    return out.getvalue()
