#!/usr/bin/env python3
"""Plot how each operation's p50 grows with the store: docs/scaling.svg from the bench JSON
that scripts/scaling.sh keeps in docs/scaling/ (chat-N.json, search-N.json, estate-N.json, estate-dense-N.json).

Standard library only (no plotting package to install): a log-log SVG, one line per
operation, and a Markdown table of the same numbers on stdout for docs/PERFORMANCE.md.

    python3 scripts/plot-scaling.py docs/scaling docs/scaling.svg
"""

import json
import math
import pathlib
import sys

# (label, file kind, path to the p50 in that report)
SERIES = [
    ("append", "chat", ["append", "p50_ms"]),
    ("last 5 messages", "chat", ["last5", "p50_ms"]),
    ("engine floor: upsert", "chat", ["floor", "upsert", "p50_ms"]),
    ("engine floor: last-5 scroll", "chat", ["floor", "last5", "p50_ms"]),
    ("keyword search", "search", ["keyword", "p50_ms"]),
    ("semantic search", "search", ["semantic", "p50_ms"]),
    ("hybrid search", "search", ["hybrid_without_embedding", "p50_ms"]),
    ("prompt context", "search", ["prompt_context", "p50_ms"]),
    ("estate filtered search", "estate", ["filtered_search", "p50_ms"]),
    ("estate count", "estate", ["count", "p50_ms"]),
    ("estate facet", "estate", ["facet", "p50_ms"]),
    ("estate semantic (HNSW)", "estate-dense", ["semantic", "p50_ms"]),
]
COLOURS = ["#1f77b4", "#ff7f0e", "#aec7e8", "#ffbb78", "#2ca02c", "#d62728", "#9467bd",
           "#8c564b", "#e377c2", "#7f7f7f", "#17becf", "#bcbd22"]


def dig(report, path):
    for key in path:
        if not isinstance(report, dict) or key not in report or report[key] is None:
            return None
        report = report[key]
    return report if isinstance(report, (int, float)) else None


def load(folder):
    """{label: {size: p50}} from every <kind>-N.json in folder."""
    points = {label: {} for label, _, _ in SERIES}
    for path in sorted(folder.glob("*.json")):
        kind, _, size = path.stem.rpartition("-")
        if not size.isdigit():
            continue
        report = json.loads(path.read_text())
        for label, series_kind, key in SERIES:
            if series_kind == kind:
                value = dig(report, key)
                if value is not None and value > 0:
                    points[label][int(size)] = value
    return {label: p for label, p in points.items() if p}


def svg(points, out):
    width, height, left, right, top, bottom = 900, 560, 70, 250, 30, 50
    sizes = sorted({s for p in points.values() for s in p})
    values = [v for p in points.values() for v in p.values()]
    x0, x1 = math.log10(min(sizes)), math.log10(max(sizes))
    y0, y1 = math.floor(math.log10(min(values))), math.ceil(math.log10(max(values)))
    x1 = x1 if x1 > x0 else x0 + 1
    y1 = y1 if y1 > y0 else y0 + 1

    def x(size):
        return left + (math.log10(size) - x0) / (x1 - x0) * (width - left - right)

    def y(ms):
        return height - bottom - (math.log10(ms) - y0) / (y1 - y0) * (height - top - bottom)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'font-family="sans-serif" font-size="12">',
             f'<rect width="{width}" height="{height}" fill="white"/>',
             f'<text x="{left}" y="18" font-size="14">p50 latency (ms, log) against store size '
             f'(log), this 2-core machine</text>']
    for e in range(y0, y1 + 1):
        ms = 10 ** e
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{y(ms):.1f}" y2="{y(ms):.1f}" '
                     f'stroke="#ddd"/><text x="{left - 8}" y="{y(ms) + 4:.1f}" '
                     f'text-anchor="end">{ms:g}</text>')
    for size in sizes:
        label = f"{size // 1000}k" if size < 1_000_000 else f"{size // 1_000_000}M"
        parts.append(f'<line x1="{x(size):.1f}" x2="{x(size):.1f}" y1="{top}" '
                     f'y2="{height - bottom}" stroke="#ddd"/><text x="{x(size):.1f}" '
                     f'y="{height - bottom + 18}" text-anchor="middle">{label}</text>')
    for i, (label, series) in enumerate(points.items()):
        colour = COLOURS[i % len(COLOURS)]
        coords = " ".join(f"{x(s):.1f},{y(v):.1f}" for s, v in sorted(series.items()))
        parts.append(f'<polyline points="{coords}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for s, v in series.items():
            parts.append(f'<circle cx="{x(s):.1f}" cy="{y(v):.1f}" r="3" fill="{colour}"/>')
        ly = top + 20 + i * 20
        parts.append(f'<line x1="{width - right + 15}" x2="{width - right + 35}" y1="{ly}" '
                     f'y2="{ly}" stroke="{colour}" stroke-width="2"/><text x="{width - right + 40}" '
                     f'y="{ly + 4}">{label}</text>')
    parts.append("</svg>")
    out.write_text("\n".join(parts) + "\n")


def table(points):
    sizes = sorted({s for p in points.values() for s in p})
    head = "| p50 ms | " + " | ".join(f"{s:,}" for s in sizes) + " |"
    rows = [head, "| --- |" + " ---: |" * len(sizes)]
    for label, series in points.items():
        cells = [f"{series[s]:.3g}" if s in series else "—" for s in sizes]
        rows.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    folder, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
    points = load(folder)
    if not points:
        sys.exit(f"no bench JSON in {folder} (run scripts/scaling.sh)")
    svg(points, out)
    print(table(points))


if __name__ == "__main__":
    main()
