"""Percentiles and the summaries every measured series is reported as."""

from __future__ import annotations

from typing import Any


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def summary(values: list[float], scale: float = 1.0) -> dict[str, Any]:
    vals = [v * scale for v in values if v is not None]
    return {
        "n": len(vals),
        "p50": rounded(percentile(vals, 0.5)),
        "p95": rounded(percentile(vals, 0.95)),
        "p99": rounded(percentile(vals, 0.99)),
        "min": rounded(min(vals) if vals else None),
        "max": rounded(max(vals) if vals else None),
    }


def rounded(v: float | None, digits: int = 3) -> float | None:
    return None if v is None else round(v, digits)
