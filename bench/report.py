"""Turns the workers' raw results into medians, ratios and target checks; prints the table.

Single-shot numbers (a load time, an RSS growth) are the median over rounds; per-operation samples
(P2, P3a, P5) are pooled over rounds before taking p50 / p99.
"""

from __future__ import annotations

import math
import statistics
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

Results = List[Dict[str, Any]]  # every worker result, each tagged with "round" and "label"


def percentile(values: Sequence[float], p: float) -> Optional[float]:
    """Nearest-rank percentile (p in 0..100); None for no data."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return float(ordered[rank - 1])


def _select(results: Results, label: str, client: str) -> Results:
    return [r for r in results if r["label"] == label and r["client"] == client]


def median_of(results: Results, label: str, client: str, key: str) -> Optional[float]:
    values = [r[key] for r in _select(results, label, client) if r.get(key) is not None]
    return float(statistics.median(values)) if values else None


def pooled(results: Results, label: str, client: str, key: str, p: float) -> Optional[float]:
    samples: List[float] = []
    for r in _select(results, label, client):
        samples.extend(r.get(key) or ())
    return percentile(samples, p)


class Metric:
    """One row of the table: how to compute it per client, and the target for triplit_sync."""

    def __init__(self, name: str, unit: str, compute: Callable[[Results, str], Optional[float]],
                 target: Optional[Tuple[str, str, float]] = None, lower_is_better: bool = True) -> None:
        self.name = name
        self.unit = unit
        self.compute = compute
        # (kind, against, bound): kind "ratio" = py / against <= bound (>= when higher is better),
        # "abs" = py <= bound, "pct_of" = py / py's own `against` metric * 100 <= bound,
        # "self" = py / py's own `against` metric <= bound (the same work on less data).
        self.target = target
        self.lower_is_better = lower_is_better


def _m(label: str, key: str) -> Callable[[Results, str], Optional[float]]:
    return lambda res, client: median_of(res, label, client, key)


def _p(label: str, key: str, p: float) -> Callable[[Results, str], Optional[float]]:
    return lambda res, client: pooled(res, label, client, key, p)


def _mb(label: str, key: str) -> Callable[[Results, str], Optional[float]]:
    def compute(res: Results, client: str) -> Optional[float]:
        v = median_of(res, label, client, key)
        return None if v is None else v / 1e6
    return compute


def _kib(label: str, key: str) -> Callable[[Results, str], Optional[float]]:
    def compute(res: Results, client: str) -> Optional[float]:
        v = median_of(res, label, client, key)
        return None if v is None else v / 1024
    return compute


def scale_metrics(n_small: int, n_huge: int) -> List[Metric]:
    """Issue 18: local queries at scale, reopen, memory, many live queries."""
    small, huge = f"S1 indexed query {n_small}", f"S1 indexed query {n_huge}"
    return [
        Metric(small, "ms", _p(f"S1_{n_small}", "indexed_ms", 50)),
        Metric(huge, "ms", _p(f"S1_{n_huge}", "indexed_ms", 50), ("self", small, 2.0)),
        Metric(f"S1 indexed first run {n_huge}", "ms", _m(f"S1_{n_huge}", "indexed_first_ms")),
        Metric(f"S1 scan query {n_small}", "ms", _p(f"S1_{n_small}", "scan_ms", 50), ("ratio", "js", 0.2)),
        Metric(f"S1 scan query {n_huge}", "ms", _p(f"S1_{n_huge}", "scan_ms", 50), ("ratio", "js", 0.2)),
        Metric(f"S2 reopen + first query {n_huge}", "ms", _m("S2_reopen", "reopen_ms"), ("abs", "", 300.0)),
        Metric("S2 open", "ms", _m("S2_reopen", "open_ms")),
        Metric("S2 first query", "ms", _m("S2_reopen", "first_query_ms")),
        Metric(f"S3 RSS growth per entity {n_huge}", "B", _m("S2_reopen", "bytes_per_entity"), ("abs", "", 600.0)),
        Metric("S4 propagation p50, 1 query", "ms", _p("S4", "latency_one_ms", 50)),
        Metric("S4 propagation p50, all queries", "ms", _p("S4", "latency_ms", 50), ("abs", "", 10.0)),
        Metric("S4 propagation p99, all queries", "ms", _p("S4", "latency_ms", 99)),
        Metric("S5 fan-out p50, last subscriber", "ms", _p("S5", "fanout_ms", 50)),
        Metric("S5 fan-out p99, last subscriber", "ms", _p("S5", "fanout_ms", 99)),
    ]


def metrics(n_small: int, n_large: int, n_huge: int = 200_000) -> List[Metric]:
    return _p_metrics(n_small, n_large) + scale_metrics(n_small, n_huge)


def _p_metrics(n_small: int, n_large: int) -> List[Metric]:
    return [
        Metric(f"P1 initial load {n_small}", "ms", _m(f"P1_{n_small}", "load_ms"),
               ("ratio", "js", 0.6)),
        Metric(f"P1 initial load {n_small} vs raw", "ms", _m(f"P1_{n_small}", "load_ms"),
               ("ratio", "raw", 1.5)),
        Metric(f"P1 initial load {n_large}", "ms", _m(f"P1_{n_large}", "load_ms"),
               ("ratio", "js", 0.6)),
        Metric(f"P1 initial load {n_large} vs raw", "ms", _m(f"P1_{n_large}", "load_ms"),
               ("ratio", "raw", 1.5)),
        Metric("P2 propagation p50", "ms", _p("P2", "latency_ms", 50), ("abs", "", 10.0)),
        Metric("P2 propagation p99", "ms", _p("P2", "latency_ms", 99)),
        Metric("P3a write ack p50", "ms", _p("P3a", "ack_ms", 50), ("abs", "", 10.0)),
        Metric("P3a write ack p99", "ms", _p("P3a", "ack_ms", 99)),
        Metric("P3b bulk inserts total", "s", lambda r, c: _scale(median_of(r, "P3b", c, "total_ms"), 1e-3)),
        Metric("P3b bulk inserts/s", "1/s", _m("P3b", "inserts_per_s"), ("ratio", "js", 1.0),
               lower_is_better=False),
        Metric("P4 resume", "ms", _m("P4_resume", "resume_ms"), ("ratio", "js", 0.5)),
        Metric("P4 resume received", "KiB", _kib("P4_resume", "bytes_received"),
               ("pct_of", "P4 full load received", 1.5)),
        Metric("P4 resume sent", "KiB", _kib("P4_resume", "bytes_sent")),
        Metric("P4 full load (fresh durable)", "ms", _m("P4_load", "load_ms")),
        Metric("P4 full load received", "KiB", _kib("P4_load", "bytes_received")),
        Metric("P5 local query", "ms", lambda r, c: pooled(r, "P5", c, "query_ms", 50), ("ratio", "js", 0.2)),
        Metric(f"P6 RSS growth, P1 {n_large}", "MB", _mb(f"P1_{n_large}", "rss_growth"),
               ("ratio", "js", 0.5)),
    ]


def _scale(v: Optional[float], k: float) -> Optional[float]:
    return None if v is None else v * k


def summarize(results: Results, n_small: int, n_large: int, n_huge: int = 200_000) -> List[Dict[str, Any]]:
    table_metrics = metrics(n_small, n_large, n_huge)
    by_name = {m.name: {client: m.compute(results, client) for client in ("py", "js", "raw", "base")}
               for m in table_metrics}
    rows = []
    for metric in table_metrics:
        values = by_name[metric.name]
        row: Dict[str, Any] = {"metric": metric.name, "unit": metric.unit, **values,
                               "ratio": None, "target": None, "met": None}
        py = values["py"]
        if metric.target:
            kind, against, bound = metric.target
            if kind == "ratio":
                other = values[against]
                row["ratio_against"] = against
                if py is not None and other:
                    row["ratio"] = py / other
                    row["met"] = row["ratio"] <= bound if metric.lower_is_better else row["ratio"] >= bound
                row["target"] = f"{'<=' if metric.lower_is_better else '>='} {bound:g}x {against}"
            elif kind == "abs":
                row["target"] = f"<= {bound:g} {metric.unit}"
                row["met"] = None if py is None else py <= bound
            elif kind == "self":
                base = by_name[against]["py"]
                row["target"] = f"<= {bound:g}x {against.split()[-1]}"
                if py is not None and base:
                    row["self_ratio"] = py / base
                    row["met"] = row["self_ratio"] <= bound
            elif kind == "pct_of":
                full = by_name[against]["py"]
                row["target"] = f"<= {bound:g}% of full load"
                if py is not None and full:
                    row["pct"] = py / full * 100
                    row["met"] = row["pct"] <= bound
        if py is not None and values["base"]:
            row["vs_base"] = py / values["base"]
        if row["ratio"] is None and py is not None and values["js"]:
            row["ratio"] = py / values["js"]
            row.setdefault("ratio_against", "js")
        rows.append(row)
    return rows


def _fmt(v: Optional[float]) -> str:
    if v is None:
        return "-"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def table(rows: List[Dict[str, Any]]) -> str:
    header: Tuple[str, ...] = ("metric", "unit", "triplit_sync", "JS client", "raw reader", "ratio", "target", "met")
    with_base = any(r.get("base") is not None for r in rows)
    if with_base:
        header += ("baseline", "vs baseline")
    lines = [header]
    for r in rows:
        if r["py"] is None and r["js"] is None and r["raw"] is None:
            continue  # a scenario this run left out
        if r.get("pct") is not None:
            ratio = f"{r['pct']:.2f}% full"
        elif r.get("self_ratio") is not None:
            ratio = f"{r['self_ratio']:.2f}x self"
        elif r["ratio"] is not None:
            ratio = f"{r['ratio']:.2f}x {r.get('ratio_against', 'js')}"
        else:
            ratio = "-"
        met = {True: "yes", False: "NO", None: ""}[r["met"]]
        line: Tuple[str, ...] = (r["metric"], r["unit"], _fmt(r["py"]), _fmt(r["js"]), _fmt(r["raw"]), ratio,
                                 r["target"] or "", met)
        if with_base:
            vs = r.get("vs_base")
            line += (_fmt(r.get("base")), "-" if vs is None else f"{vs:.2f}x")
        lines.append(line)
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = []
    for i, line in enumerate(lines):
        cells = [c.ljust(w) if j in (0, 1, 6) else c.rjust(w) for j, (c, w) in enumerate(zip(line, widths))]
        out.append("  ".join(cells).rstrip())
        if i == 0:
            out.append("  ".join("-" * w for w in widths))
    return "\n".join(out)
