"""Charts of a bench/bench.py run (runs in bench/.venvs/tools, which has matplotlib).

Usage: chart.py SUMMARY_JSON OUT_DIR. Writes bench-hello.png (hello req/s at 1, 16 and 128
connections per server) and bench-ratios.png (req/s of each server over waitress's, per
scenario, log scale); prints the paths written.
"""

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

OURS = "waitress-rs"


COLORS: dict[str, tuple] = {}


def set_colors(servers: list[str]) -> None:
    """One color per server, the same in every chart."""
    palette = plt.get_cmap("tab10").colors
    COLORS.update({s: palette[i % len(palette)] for i, s in enumerate(servers)})


def grouped(ax, groups: list[str], servers: list[str], value) -> None:
    width = 0.8 / max(1, len(servers))
    for i, server in enumerate(servers):
        color = COLORS.get(server)
        xs, ys = [], []
        for g, group in enumerate(groups):
            y = value(group, server)
            if y:
                xs.append(g + (i - (len(servers) - 1) / 2) * width)
                ys.append(y)
        edge = "black" if server == OURS else None
        ax.bar(xs, ys, width, label=server, color=color, edgecolor=edge, linewidth=1.2)
    ax.set_xticks(range(len(groups)))
    ax.set_xticklabels(groups)
    ax.grid(axis="y", alpha=0.3)


def hello_chart(summary: dict, out: Path) -> Path | None:
    groups = [g for g in ("hello@1", "hello@16", "hello@128") if g in summary["scenarios"]]
    if not groups:
        return None
    rps = summary["rps"]
    fig, ax = plt.subplots(figsize=(9, 4.5))
    grouped(ax, groups, summary["servers"], lambda g, s: rps.get(f"{g}|{s}"))
    ax.set_ylabel("requests/s (median)")
    ax.set_title("hello (13 B): req/s by connections, one process, threads=4")
    ax.legend(fontsize=8, ncol=4)
    path = out / "bench-hello.png"
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def ratio_chart(summary: dict, out: Path) -> Path | None:
    rps = summary["rps"]
    skip = {"cpu-pinned", "idle10k"}
    groups = [g for g in summary["scenarios"] if g not in skip and rps.get(f"{g}|waitress")]
    if not groups:
        return None
    servers = [s for s in summary["servers"] if s != "waitress"]

    def value(group: str, server: str) -> float | None:
        mine, base = rps.get(f"{group}|{server}"), rps.get(f"{group}|waitress")
        return mine / base if mine and base else None

    fig, ax = plt.subplots(figsize=(11, 4.5))
    grouped(ax, groups, servers, value)
    ax.set_yscale("log")
    ax.axhline(1.0, color="grey", linewidth=0.8)
    ax.set_ylabel("req/s ÷ waitress 3.0.2 (log)")
    ax.set_title("Every scenario, relative to waitress in the same run")
    ax.legend(fontsize=8, ncol=3)
    path = out / "bench-ratios.png"
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def main() -> None:
    summary = json.loads(Path(sys.argv[1]).read_text())
    out = Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    set_colors(summary["servers"])
    for path in (hello_chart(summary, out), ratio_chart(summary, out)):
        if path is not None:
            print(path)


if __name__ == "__main__":
    main()
