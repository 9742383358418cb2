"""Small helpers to present results: JSON, markdown tables and mean/spread over seeds."""

from __future__ import annotations

import json
import math
import statistics


def json_text(obj, indent: int | None = None) -> str:
    """``obj`` as strict JSON, keys sorted: a NaN or infinity (no measurement) is written as ``null``."""
    return json.dumps(_finite(obj), indent=indent, sort_keys=True, allow_nan=False)


def _finite(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def markdown_table(headers: list[str], rows: list[list]) -> str:
    """A GitHub-markdown table, columns padded so it also reads well in a terminal."""
    cells = [[_cell(v) for v in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)]
    line = lambda values: "| " + " | ".join(v.ljust(w) for v, w in zip(values, widths)) + " |"  # noqa: E731
    return "\n".join([line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *map(line, cells)])


def _cell(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def pct(values: list[float]) -> str:
    """``97.12 ± 0.35``: the mean and spread of fractions, in percent; ``-`` for none."""
    if not values:
        return "-"
    mean, std = mean_std(values)
    return f"{100 * mean:.2f} ± {100 * std:.2f}"
