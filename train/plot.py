"""The learning curve of a run as a PNG beside its grids: test (and training) -ELBO per epoch."""

from pathlib import Path

from edgevae.atomic import atomic_write

PLOT_NAME = "neg_elbo.png"


def write_neg_elbo_plot(history: list[dict], out: Path) -> Path | None:
    """Plot test and training -ELBO (nats per image) against epoch into out/neg_elbo.png.

    matplotlib is optional (the `dev` extra): without it this prints one line and returns None.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")  # no display; must precede pyplot's import
        import matplotlib.pyplot as plt
    except ImportError:
        print("no matplotlib: skipping the -ELBO plot (pip install matplotlib)", flush=True)
        return None
    epochs = [row["epoch"] for row in history]
    fig, ax = plt.subplots(figsize=(6, 4), dpi=100)
    ax.plot(epochs, [row["test_neg_elbo"] for row in history], "o-", label="test -ELBO")
    if all("train_neg_elbo" in row for row in history):
        ax.plot(epochs, [row["train_neg_elbo"] for row in history], "s--", alpha=0.6, label="training -ELBO")
    ax.set(xlabel="epoch", ylabel="nats per image", title=f"-ELBO per epoch (last: test {history[-1]['test_neg_elbo']:.2f})")
    ax.xaxis.get_major_locator().set_params(integer=True)  # epochs are whole numbers
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = Path(out) / PLOT_NAME
    atomic_write(path, lambda f: fig.savefig(f, format="png"))
    plt.close(fig)
    return path
