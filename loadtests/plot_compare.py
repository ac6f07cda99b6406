#!/usr/bin/env python3
"""Draw compare.py results (its --json files) as gnatsd/Go ratio bars, one group per interpreter.

    python loadtests/plot_compare.py docs/benchmarks.png pypy=/tmp/pypy.json cpython=/tmp/cpy.json

Needs matplotlib (`pip install 'gnatsd[bench]'`).
"""
from __future__ import annotations

import json
import sys


def main():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out, runs = sys.argv[1], [arg.split("=", 1) for arg in sys.argv[2:]]
    data = {label: {row["scenario"]: row["ratio"] for row in json.load(open(path))} for label, path in runs}
    scenarios = list(next(iter(data.values())))
    width = 0.8 / len(data)
    fig, ax = plt.subplots(figsize=(9, 4.5))
    for i, (label, ratios) in enumerate(data.items()):
        xs = [j + i * width for j in range(len(scenarios))]
        ax.bar(xs, [ratios.get(s, 0) for s in scenarios], width, label=f"gnatsd on {label}")
    ax.axhline(1.0, color="grey", linewidth=1, linestyle="--")
    ax.set_xticks([j + width * (len(data) - 1) / 2 for j in range(len(scenarios))])
    ax.set_xticklabels(scenarios)
    ax.set_ylabel("gnatsd / Go nats-server 2.9.10 (higher is better)")
    ax.set_title("natsbench compare.py, medians of 3 rounds, same machine, same run")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=100)


if __name__ == "__main__":
    main()
