"""`edgevae check`: per graph x variant, how many nodes each execution provider would take and in how many
partitions, and why the rest stay off it, as onnxruntime itself judges it. Torch-free; needs onnx (the `check`
extra), because onnxruntime's usability checker imports it.

Per target, the first method that applies:
- the provider is in this onnxruntime and takes nodes here (the CPU's always; NNAPI on Android, CoreML on
  macOS, QNN or XNNPACK builds): a session places the nodes (runtime/inference/providers.py) and onnxruntime's partition
  grouping counts the groups: a measurement of this machine's onnxruntime;
- onnxruntime ships an operator list for it (NNAPI, CoreML MLProgram, in onnxruntime/tools/mobile_helpers/):
  onnxruntime's usability checker (`python -m onnxruntime.tools.check_onnx_model_mobile_usability`) on the graph
  after onnxruntime's basic optimizations, with shapes inferred, fixed shapes required. One addition: NNAPI's
  rank limit. onnxruntime's NNAPI op builders refuse inputs of rank > 4 (Transpose, Reshape, ...; e.g.
  onnxruntime/core/providers/nnapi/nnapi_builtin/builders/impl/transpose_op_builder.cc), which its Python checker
  does not model (it passes max_rank 999), so the NNAPI check passes max_rank 4: the int8 decoder's 5-D
  channels-last interleave then stays off NNAPI, as it would on a phone;
- neither (XNNPACK and QNN on the pip wheel for x86 Linux): unknown, said so, never guessed from a hand-kept list.
The usability checker counts operator types; caveats on attributes (e.g. "Only 2D Conv") are not checked by it.
"""

import importlib.util
import pathlib
import sys
import tempfile
import types
from dataclasses import dataclass

from edgevae.runtime.contract.manifest import GRAPH_NAMES, ModelDir, TargetFit, Targets
from edgevae.runtime.inference.providers import CPU, assigned_nodes
from edgevae.runtime.device.targets import TARGETS


@dataclass(frozen=True)
class Target:
    """An execution provider as `edgevae check` judges it."""

    provider: str
    ops_list: str | None  # the operator list onnxruntime ships for it (tools/mobile_helpers/), if any
    max_rank: int = 999  # the largest input rank it takes (usability checker's max_rank)


TARGET_SPECS = {  # keyed by runtime/device/targets.py's TARGETS, the names the record and the CLI use
    "nnapi": Target("NnapiExecutionProvider", "nnapi_supported_ops.md", max_rank=4),
    "coreml": Target("CoreMLExecutionProvider", "coreml_supported_mlprogram_ops.md", max_rank=5),  # as onnxruntime's checker
    "xnnpack": Target("XnnpackExecutionProvider", None),
    "qnn": Target("QNNExecutionProvider", None),
    "cpu": Target(CPU, None),
}


def ort_tools(module: str):
    """onnxruntime.tools.<module>, torch-free. The package's __init__ imports torch whenever torch is installed
    (3.3 s here, for a PyTorch export helper nothing here uses), so when nothing has imported the package yet it
    is registered as a bare package over its own folder, and its modules load from there without that import."""
    if "onnxruntime.tools" not in sys.modules:
        spec = importlib.util.find_spec("onnxruntime.tools")
        package = types.ModuleType("onnxruntime.tools")
        package.__path__, package.__spec__ = list(spec.submodule_search_locations), spec
        sys.modules["onnxruntime.tools"] = package
    return importlib.import_module(f"onnxruntime.tools.{module}")


class _Placed:
    """The usability checker's supported-ops interface, answered by where a session put each node."""

    def __init__(self, names: set):
        self.names = names

    def is_op_supported(self, node) -> bool:
        return node.name in self.names

    def get_caveats(self) -> list:
        return []


def optimized(data: bytes, folder: pathlib.Path):
    """The graph `data` after onnxruntime's basic optimizations (what every provider is offered), nodes named,
    shapes inferred: an onnx.ModelProto, saved as folder/optimized.onnx too."""
    import onnx
    utils = ort_tools("onnx_model_utils")

    from edgevae.runtime.contract.onnx_scan import check_self_contained

    check_self_contained(data)  # optimize_model reads the file: no graph may point it at external data
    (folder / "graph.onnx").write_bytes(data)
    utils.optimize_model(folder / "graph.onnx", folder / "optimized.onnx")
    model = utils.ModelProtoWithShapeInfo(folder / "optimized.onnx").model_with_shape_info
    for i, node in enumerate(model.graph.node):
        node.name = node.name or f"node_{i}"  # a session reports nodes by name
    onnx.save(model, folder / "optimized.onnx")
    return model


def _from_checker(model, target: Target, name: str) -> TargetFit:
    checker = ort_tools("mobile_helpers.usability_checker")

    ops = checker._SupportedOpsChecker(pathlib.Path(checker.__file__).parent / target.ops_list)
    info = checker.check_partitioning(model.graph, ops, require_fixed_input_sizes=True, max_rank=target.max_rank)
    why = {op: f"not in onnxruntime's {name} operator list ({target.ops_list})" for op in sorted(info.unsupported_ops)}
    if info.nodes_unsupported_due_to_dynamic_input:
        why["dynamic shapes"] = ("nodes reading a tensor of dynamic shape stay off (NNAPI takes none, CoreML runs them "
                                 "slowly): add fixed-shape variants, --static-batch")
    for op in sorted(info.ops_with_unsupported_rank):
        why.setdefault(op, f"input of rank > {target.max_rank}, more than {name} takes")
    return TargetFit(nodes=info.num_nodes, taken=info.num_supported_nodes, partitions=info.num_partitions,
                     method=f"onnxruntime usability checker, {target.ops_list}, max rank {target.max_rank}", why=why)


def _from_session(model, folder: pathlib.Path, target: Target) -> TargetFit | None:
    """None when this onnxruntime cannot report where it placed the nodes."""
    checker = ort_tools("mobile_helpers.usability_checker")

    placed = assigned_nodes((folder / "optimized.onnx").read_bytes(), target.provider)
    if placed is None:
        return None
    taken = {n for n, provider in placed.items() if provider == target.provider}
    info = checker.check_partitioning(model.graph, _Placed(taken), require_fixed_input_sizes=False)
    why = {}
    for node in model.graph.node:
        if node.name not in taken:
            why[node.op_type] = f"placed on {placed.get(node.name, 'no provider')} by onnxruntime here"
    return TargetFit(nodes=len(model.graph.node), taken=len(taken), partitions=info.num_partitions,
                     method=f"onnxruntime session on this machine ({target.provider})", why=why)


def _unknown(nodes: int, reason: str) -> TargetFit:
    return TargetFit(nodes=nodes, taken=None, partitions=None, method="none", why={"": reason})


def _first_line(err: Exception) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0][:200]


def fit(data: bytes, targets=TARGETS) -> dict[str, TargetFit]:
    """{target: TargetFit} for the ONNX graph `data`. What onnxruntime's tools cannot judge (a graph whose shapes
    its shape inference refuses, say) is recorded as unknown with their reason: the record informs, it never
    stops an export."""
    import onnxruntime as ort

    from edgevae.runtime.inference.providers import takes_nodes

    fits = {}
    with tempfile.TemporaryDirectory(prefix="edgevae-check-") as tmp:
        try:
            model = optimized(data, pathlib.Path(tmp))
        except ImportError:
            raise  # a missing onnx is the install's fault (the CLI names the extra), not the graph's
        except Exception as err:  # onnx's and onnxruntime's own types
            return {name: _unknown(0, f"onnxruntime's tools could not prepare the graph: {_first_line(err)}")
                    for name in targets}
        for name in targets:
            target = TARGET_SPECS[name]
            try:
                local = target.provider in ort.get_available_providers() and takes_nodes(data, target.provider)
                found = _from_session(model, pathlib.Path(tmp), target) if local else None
                if found is None and target.ops_list:
                    found = _from_checker(model, target, name)
            except Exception as err:  # as above
                found = _unknown(len(model.graph.node), f"onnxruntime's checker failed: {_first_line(err)}")
            fits[name] = found or _unknown(len(model.graph.node), f"this onnxruntime has no {target.provider} and ships "
                                           "no operator list for it: run edgevae check where onnxruntime is built with it")
    return fits


def check(model: ModelDir, targets=TARGETS) -> Targets:
    """The Targets record of every variant x graph of model (its files hashed as they are read)."""
    import onnxruntime as ort

    return Targets(onnxruntime=ort.__version__,
                   fits={v: {g: fit(model.graph_bytes(v, g), targets) for g in GRAPH_NAMES} for v in model.manifest.variants})


def main(args) -> None:
    """CLI entry: check every variant x graph of --model for --target, print the table (or --json)."""
    import json

    from edgevae.runtime.contract.manifest import load
    from edgevae.runtime.device.targets import table
    from edgevae.runtime.contract.typed_json import to_json

    names = TARGETS if args.target == "all" else (args.target,)
    model = load(args.model)
    model.verify()
    targets = check(model, names)
    if args.json:
        print(json.dumps(to_json(targets), indent=2))
    else:
        print(table(targets, list(names)))
        print(f"onnxruntime {targets.onnxruntime}; method per target: " + "; ".join(
            f"{t}: {next(iter(targets.fits.values()))['encoder'][t].method}" for t in names))
