"""PNG plots of a benchmark run (matplotlib with the Agg backend, imported only here)."""

import io

from edgevae.runtime.contract.manifest import GRAPH_NAMES


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110)
    return buffer.getvalue()


def throughput_plot(results: dict) -> bytes:
    """Images/s against batch size, one panel per (graph, threads), one line per engine."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = results["latency"]
    threads = sorted({r["threads"] for r in rows})
    fig, axes = plt.subplots(2, len(threads), figsize=(5 * len(threads), 7), squeeze=False)
    for i, graph in enumerate(GRAPH_NAMES):
        for j, t in enumerate(threads):
            ax = axes[i][j]
            group = [r for r in rows if r["graph"] == graph and r["threads"] == t]
            for name in dict.fromkeys(r["name"] for r in group):
                points = sorted((r["batch"], r["throughput_per_s"]) for r in group if r["name"] == name)
                ax.plot(*zip(*points), marker="o", label=name)
            ax.set(xscale="log", yscale="log", xlabel="batch", ylabel="images/s", title=f"{graph}, {t} thread(s)")
            ax.grid(True, which="both", alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    data = _png(fig)
    plt.close(fig)
    return data


def cold_start_plot(results: dict) -> bytes:
    """Median cold-start seconds and peak RSS of the runtime and torch processes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cold = {k: v for k, v in results["cold_start"].items() if isinstance(v, dict) and "seconds_median" in v}
    fig, (ax_s, ax_m) = plt.subplots(1, 2, figsize=(8, 3.5))
    ax_s.bar(list(cold), [c["seconds_median"] for c in cold.values()], color="tab:blue")
    ax_s.set(ylabel="seconds", title="process start -> 64 samples PNG")
    ax_m.bar(list(cold), [c["max_rss_mib_median"] for c in cold.values()], color="tab:orange")
    ax_m.set(ylabel="MiB", title="peak RSS")
    fig.tight_layout()
    data = _png(fig)
    plt.close(fig)
    return data


def plot_all(results: dict) -> dict:
    """{file name: PNG bytes} of every plot."""
    return {"throughput.png": throughput_plot(results), "cold_start.png": cold_start_plot(results)}
