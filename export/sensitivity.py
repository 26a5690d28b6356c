"""Per-layer sensitivity of static int8: what each layer costs in quality when it alone is int8, and what
share of the graph's time it takes, so that export/mixed.py knows which layers are worth keeping fp32.

A *group* is one compute node (Conv, Gemm, MatMul) of the graph int8 is built from (prepare_int8's rewritten,
pre-processed fp32 graph) together with the nodes after it, in topological order, up to the next compute node:
its activation (LeakyRelu) and, in the rewritten decoder, the sub-pixel interleave. The nodes before the first
compute node (the encoder's channel Pad) join the first group. An output head's Sigmoid, a ConvTranspose and attention's
MatMuls of two activations and Softmax are never quantized (see export/variants.py), so they belong to no group; a SiLU's Sigmoid is int8 and joins its group.

Quality is measured as in export/quality.py, against the fp32 graphs on the same images and seeded noise:
decoder PSNR over z ~ N(0, I) samples (the manifest's figure), PSNR of the reconstructions (which an encoder
layer moves too), and the -ELBO cost in nats per image. Time comes from onnxruntime's profiler (the kernels
attributed to a group by node and tensor names; what matches no group, such as layout Transposes that
onnxruntime inserts, is "other"), in the fp32 graph and in the all-int8 graph.
"""

import tempfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx

from .attention import attention_fp32_nodes
from .silu import head_sigmoids
from .variants import Int8Settings, prepare_int8, quantize_prepared

COMPUTE_OPS = ("Conv", "Gemm", "MatMul")


@dataclass(frozen=True)
class Group:
    """One quantizable layer: its compute node (name, op) and every node kept fp32 or int8 with it."""

    name: str
    op: str
    nodes: tuple[str, ...]
    outputs: tuple[str, ...]  # tensors its nodes produce: onnxruntime names fused kernels after them


def node_groups(model: onnx.ModelProto) -> list[Group]:
    """The groups of model (see the module docstring), in graph order."""
    groups, pending = [], []  # pending: nodes before the first compute node
    heads = set(head_sigmoids(model)) | set(attention_fp32_nodes(model))  # never int8, as ConvTranspose
    for node in model.graph.node:
        if not node.name:
            raise ValueError(f"a {node.op_type} node has no name: groups are named after nodes")
        if node.op_type == "ConvTranspose" or node.name in heads:
            if groups:  # fp32 fuses Conv + Sigmoid into one kernel named after the Sigmoid's output
                groups[-1]["outputs"].extend(node.output)
            continue
        if node.op_type in COMPUTE_OPS:
            groups.append({"name": node.name, "op": node.op_type, "nodes": [*pending, node.name], "outputs": list(node.output)})
            pending = []
        elif groups:
            groups[-1]["nodes"].append(node.name)
            groups[-1]["outputs"].extend(node.output)
        else:
            pending.append(node.name)
    return [Group(g["name"], g["op"], tuple(g["nodes"]), tuple(g["outputs"])) for g in groups]


def fp32_nodes_of(groups: list[Group], names) -> tuple[str, ...]:
    """Every node of the groups named in `names` (Int8Settings.fp32_nodes)."""
    chosen = set(names)
    unknown = chosen - {g.name for g in groups}
    if unknown:
        raise ValueError(f"no group named {sorted(unknown)[0]!r}; groups: {', '.join(g.name for g in groups)}")
    return tuple(n for g in groups if g.name in chosen for n in g.nodes)


def fp32_compute_nodes(model: onnx.ModelProto) -> list[str]:
    """Compute nodes (ConvTranspose included) of a QDQ graph that run in fp32: their weight is not the output of
    a DequantizeLinear."""
    dequantized = {out for n in model.graph.node if n.op_type == "DequantizeLinear" for out in n.output}
    return [n.name for n in model.graph.node if n.op_type in (*COMPUTE_OPS, "ConvTranspose") and n.input[1] not in dequantized]


@dataclass(frozen=True)
class PreparedGraph:
    """One graph ready to be quantized many ways: the fp32 source, its prepared form, groups and calibration
    data, and a work folder where each calibration method's ranges are cached after their first use."""

    graph: str
    source: Path  # the model dir's fp32 graph
    prepared: Path
    groups: tuple[Group, ...]
    calibration: np.ndarray
    work: Path
    origins: dict  # {group: the source's ConvTranspose it was rewritten from}

    def build(self, dst: Path, settings: Int8Settings) -> Path:
        """The int8 graph of `settings` at dst (settings.fp32_nodes name nodes of self.prepared)."""
        import hashlib

        method = settings.calibration or "default"
        cache = self.work / f"{self.graph}.{method}.{settings.percentile}.calibration.json"
        prepared = self.prepared
        if settings.keep_conv_transpose:  # its own prepared graph; the ranges of the tensors it keeps are the same
            key = hashlib.sha256("\0".join(sorted(settings.keep_conv_transpose)).encode()).hexdigest()[:12]
            prepared = self.work / f"{self.graph}.keep-{key}.prepared.onnx"
            if not prepared.exists():
                prepare_int8(self.source, prepared, graph=self.graph, keep_conv_transpose=settings.keep_conv_transpose)
        quantize_prepared(prepared, Path(dst), graph=self.graph, calibration=self.calibration, settings=settings, cache=cache)
        return Path(dst)


def prepare(graph: str, source: Path, *, calibration: np.ndarray, work: Path) -> PreparedGraph:
    """A PreparedGraph of the fp32 graph at source, its files in work."""
    prepared = Path(work) / f"{graph}.prepared.onnx"
    prepare_int8(Path(source), prepared, graph=graph)
    groups = tuple(node_groups(onnx.load(prepared)))
    if not groups:
        raise ValueError(f"the {graph} has no {'/'.join(COMPUTE_OPS)} node to quantize")
    conv_transposes = {n.name for n in onnx.load(source).graph.node if n.op_type == "ConvTranspose"}
    origins = {g.name: g.name.split("/")[0] for g in groups if "/" in g.name and g.name.split("/")[0] in conv_transposes}
    return PreparedGraph(graph, Path(source), prepared, groups, calibration, Path(work), origins)


def attribute(kernel: str, groups) -> str | None:
    """The group a profiled kernel belongs to: the one with the longest node or output-tensor name that
    starts the kernel's name (onnxruntime names fused kernels "<node>_token_N" or "<output tensor>_nchwc")."""
    best, length = None, 0
    for g in groups:
        for name in (*g.nodes, *g.outputs):
            if len(name) > length and kernel.startswith(name):
                best, length = g.name, len(name)
    return best


def profile_groups(path, groups, *, feed: dict, runs: int = 10, threads: int | None = 1) -> dict:
    """{"run_us": median per run, "by_group": {group: us per run}, "other_us": kernels of no group}, from
    onnxruntime's profiler with the runtime's session options (threads=1 by default: shares, not speed)."""
    from edgevae.runtime.inference.sessions import SessionConfig, profile

    kernels, run_us = profile(Path(path).read_bytes(), feed, runs=runs, config=SessionConfig(threads=threads))
    by_group = defaultdict(float)
    for node, _, us in kernels:
        by_group[attribute(node, groups)] += us
    n = max(len(run_us), 1)
    return {"run_us": float(np.median(run_us)) if run_us else 0.0,
            "by_group": {g.name: by_group.get(g.name, 0.0) / n for g in groups}, "other_us": by_group.get(None, 0.0) / n}


def quality_of(reference: dict, graphs, *, test_images: np.ndarray, seed: int = 0) -> dict:
    """Quality of a GraphPair against `reference` (quality.graph_outputs of fp32): {"psnr_db": decoder samples,
    "recon_psnr_db": reconstructions, "nats": -ELBO cost per image, "neg_elbo": -ELBO}; PSNR of identical
    outputs is reported as None (JSON has no inf)."""
    from .quality import graph_outputs, mean_neg_elbo, psnr

    got = graph_outputs(graphs, test_images, seed=seed)
    elbo = mean_neg_elbo(got, test_images)
    finite = lambda db: None if db == float("inf") else round(db, 3)  # noqa: E731
    return {"psnr_db": finite(psnr(reference["samples"], got["samples"])),
            "recon_psnr_db": finite(psnr(reference["x_hat"], got["x_hat"])),
            # a model without a likelihood has no nats: its cost counts as 0 and only the PSNR budget binds
            "nats": round(elbo - mean_neg_elbo(reference, test_images), 4) if elbo is not None else 0.0,
            "neg_elbo": round(elbo, 4) if elbo is not None else None}


def group_sensitivity(prepared: dict, settings: dict, *, reference: dict, test_images: np.ndarray, model,
                      feeds: dict, seed: int = 0, profile_runs: int = 10, deadline: float | None = None) -> list[dict]:
    """One row per group of every graph in `prepared` ({graph: PreparedGraph} of model, a ModelDir): its quality
    cost when it alone is int8 (the other graph fp32; settings[graph] the Int8Settings), and its kernel time in
    the fp32 and the all-int8 graph at the batch of feeds[graph]. Rows not measured before `deadline`
    (time.monotonic) are left out."""
    import dataclasses
    import time

    from edgevae.runtime.inference.graph_pair import GraphPair

    rows = []
    with tempfile.TemporaryDirectory(prefix="edgevae-sensitivity-") as tmp:
        for graph, prep in prepared.items():
            base = settings[graph]
            whole = prep.build(Path(tmp) / f"{graph}.all.onnx", dataclasses.replace(base, fp32_nodes=()))
            fp32_time = profile_groups(prep.prepared, prep.groups, feed=feeds[graph], runs=profile_runs)
            int8_time = profile_groups(whole, prep.groups, feed=feeds[graph], runs=profile_runs)
            # the source's ConvTransposes, which a group kept fp32 can run as again (variants.restore_nodes)
            origin_groups = [Group(g, "ConvTranspose", (o,), ()) for g, o in prep.origins.items()]
            convt_time = profile_groups(prep.source, origin_groups, feed=feeds[graph], runs=profile_runs) if origin_groups else None
            for group in prep.groups:
                if deadline is not None and time.monotonic() > deadline:
                    return rows
                others = [g.name for g in prep.groups if g is not group]
                one = prep.build(Path(tmp) / f"{graph}.one.onnx",
                                 dataclasses.replace(base, fp32_nodes=fp32_nodes_of(prep.groups, others)))
                paths = {g: p.source for g, p in prepared.items()} | {graph: one}
                rows.append({"graph": graph, "group": group.name, "op": group.op, "nodes": list(group.nodes),
                             **quality_of(reference, GraphPair.of_files(model, paths), test_images=test_images, seed=seed),
                             "fp32_us": round(fp32_time["by_group"][group.name], 1),
                             "int8_us": round(int8_time["by_group"][group.name], 1),
                             "share_fp32": round(fp32_time["by_group"][group.name] / max(fp32_time["run_us"], 1e-9), 4),
                             "share_int8": round(int8_time["by_group"][group.name] / max(int8_time["run_us"], 1e-9), 4),
                             "fp32_conv_transpose_us": round(convt_time["by_group"][group.name], 1)
                             if group.name in prep.origins else None})
    return rows


def format_table(rows: list[dict], graph: str) -> str:
    """The sensitivity rows of one graph as a markdown table."""
    fmt = lambda db: "identical" if db is None else f"{db:.2f}"  # noqa: E731
    lines = [f"| {graph} group | op | PSNR dB (samples) | PSNR dB (recon) | +nats/image | fp32 us (share) | int8 us (share) "
             "| fp32 as ConvTranspose us |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        if r["graph"] == graph:
            convt = "-" if r.get("fp32_conv_transpose_us") is None else f"{r['fp32_conv_transpose_us']:.0f}"
            lines.append(f"| {r['group']} | {r['op']} | {fmt(r['psnr_db'])} | {fmt(r['recon_psnr_db'])} | {r['nats']:+.3f} | "
                         f"{r['fp32_us']:.0f} ({r['share_fp32']:.0%}) | {r['int8_us']:.0f} ({r['share_int8']:.0%}) | {convt} |")
    return "\n".join(lines)


def plot(rows: list[dict], path: Path) -> Path:
    """One panel per graph: each group's -ELBO cost alone in int8 (bars) and its share of the int8 graph's
    time (dots, right axis), as a PNG at path."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    graphs = list(dict.fromkeys(r["graph"] for r in rows))
    fig, axes = plt.subplots(1, max(len(graphs), 1), figsize=(6 * max(len(graphs), 1), 4), squeeze=False)
    for ax, graph in zip(axes[0], graphs):
        mine = [r for r in rows if r["graph"] == graph]
        x = np.arange(len(mine))
        ax.bar(x, [r["nats"] for r in mine], color="tab:blue", label="+nats/image, this group alone int8")
        ax.set_xticks(x, [r["group"].removeprefix("node_") for r in mine], rotation=45, ha="right", fontsize=7)
        ax.set_ylabel("-ELBO cost, nats/image")
        ax.set_title(f"{graph}: int8 sensitivity per group")
        twin = ax.twinx()
        twin.plot(x, [r["share_int8"] for r in mine], "o", color="tab:red", label="share of int8 graph time")
        twin.plot(x, [r["share_fp32"] for r in mine], "x", color="tab:gray", label="share of fp32 graph time")
        twin.set_ylabel("share of graph time")
        handles = ax.get_legend_handles_labels()[0] + twin.get_legend_handles_labels()[0]
        ax.legend(handles, [h.get_label() for h in handles], fontsize=7, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
