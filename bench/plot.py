"""Draw docs/bench.png from bench/results/*.json: latency percentiles and the
mediator-to-raw ratios, one colour per database.

    python -m bench.plot bench/results/A-sqlite.json bench/results/B-postgresql.json

Files of the same database are merged, later scenarios over earlier ones.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

ROOT = Path(__file__).resolve().parent.parent


def draw(results: list[dict[str, Any]], out: Path) -> None:
    fig, (lat, ratios) = plt.subplots(1, 2, figsize=(13, 5), gridspec_kw={"width_ratios": [3, 2]})
    width = 0.8 / (2 * len(results))
    for r_index, result in enumerate(results):
        latency = {k: v for k, v in result["scenarios"].items() if k.startswith("3 latency")}
        labels = [re.sub(r" \(.*\)", "", k.removeprefix("3 latency ")) for k in latency]
        for k_index, kind in enumerate(("mediator", "raw")):
            offset = (2 * r_index + k_index) * width
            lat.bar(
                [i + offset for i in range(len(labels))],
                [entry[kind]["median"] for entry in latency.values()],
                width,
                label=f"{kind} ({result['database']})",
                hatch="" if kind == "mediator" else "//",
                color=f"C{r_index}",
                alpha=1.0 if kind == "mediator" else 0.5,
            )
        lat.set_xticks([i + 0.4 - width / 2 for i in range(len(labels))], labels, rotation=20,
                       ha="right", fontsize=8)  # fmt: skip
    lat.set_yscale("log")
    lat.set_ylabel("commit → handler start, ms (log)")
    lat.set_title("Latency percentiles, median of runs")
    lat.legend(fontsize=8)

    names = {
        "1 publish cost per request": "publish cost\n(lower is better)",
        "2 handler runs per second": "throughput",
        "4 relay drain, 1 relay(s)": "relay drain,\n1 relay",
        "4 relay drain, 2 relay(s)": "relay drain,\n2 relays",
    }
    for r_index, result in enumerate(results):
        points = []
        for key, label in names.items():
            for name, entry in result["scenarios"].items():
                if name.startswith(key):
                    points.append((label, entry["mediator"]["median"] / entry["raw"]["median"]))
        ratios.bar(
            [i + r_index * 0.4 for i in range(len(points))], [v for _, v in points], 0.4,
            label=result["database"], color=f"C{r_index}",
        )  # fmt: skip
        ratios.set_xticks([i + 0.2 for i in range(len(points))], [p for p, _ in points], fontsize=8)
    ratios.axhline(1.0, color="black", linewidth=0.8)
    ratios.set_ylabel("mediator ÷ raw Celery")
    ratios.set_title("Ratios to raw Celery, same run")
    ratios.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def merged(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One result per database; a later file's scenarios replace the earlier
    ones with the same number (a partial re-run with --only over a full run)."""
    by_database: dict[str, dict[str, Any]] = {}
    for result in results:
        base = by_database.setdefault(result["database"], {**result, "scenarios": {}})
        rerun = {name.split()[0] for name in result["scenarios"]}  # scenario numbers
        base["scenarios"] = {
            name: entry for name, entry in base["scenarios"].items()
            if name.split()[0] not in rerun
        } | result["scenarios"]  # fmt: skip
    return list(by_database.values())


def main() -> int:
    files = [Path(p) for p in sys.argv[1:]]
    if not files:
        print(__doc__, file=sys.stderr)
        return 2
    out = ROOT / "docs" / "bench.png"
    draw(merged([json.loads(f.read_text()) for f in files]), out)
    print(f"written: {out.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
