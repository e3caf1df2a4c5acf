"""Latency summaries."""

from __future__ import annotations

import statistics


def summarize(samples: list[float]) -> dict[str, float]:
    s = sorted(samples)
    n = len(s)

    def pct(p: float) -> float:
        return s[min(n - 1, int(p / 100 * n))]

    total = sum(s)
    return {
        "n": n,
        "p50_ms": pct(50) * 1e3,
        "p99_ms": pct(99) * 1e3,
        "mean_ms": statistics.fmean(s) * 1e3,
        "per_second": n / total if total else 0.0,
    }


def ratio(a: float, b: float) -> float:
    return round(a / b, 3) if b else float("nan")


def spread(values: list[float]) -> dict[str, float]:
    """Median of repeated runs, with min and max: never the best run alone."""
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "runs": len(values),
    }
