"""Which onnxruntime execution providers can run a graph here, and which of its nodes each one takes.

`onnxruntime.get_available_providers()` lists what this build of onnxruntime was compiled with, not what can
run a model: the pip wheel for Linux lists AzureExecutionProvider, which sends requests to a cloud endpoint and
takes no node of a local graph. So a provider counts only when onnxruntime, asked to place a graph's nodes with
it first and the CPU's after (session config `session.record_ep_graph_assignment_info`), gives it at least one
node; an onnxruntime too old to report that counts every provider it lists. Torch- and onnx-free: tune uses it.
"""

import onnxruntime as ort

CPU = "CPUExecutionProvider"


def assigned_nodes(data: bytes, provider: str, *, optimize: bool = False) -> dict[str, str] | None:
    """{node name: provider onnxruntime gives it} for the ONNX graph `data` offered to `provider` first and the
    CPU's after; None when this onnxruntime cannot report assignments. optimize: apply onnxruntime's basic
    optimizations first (off: the graph's own nodes, as a caller that optimized it already needs them)."""
    from ..contract.onnx_scan import check_self_contained
    from .sessions import SessionConfig, session_options

    check_self_contained(data)  # the runtime's rule: no graph makes onnxruntime read a file
    options = session_options(SessionConfig(threads=1, optimize=optimize))
    if optimize:
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    options.add_session_config_entry("session.record_ep_graph_assignment_info", "1")
    session = ort.InferenceSession(data, sess_options=options, providers=list(dict.fromkeys((provider, CPU))))
    if not hasattr(session, "get_provider_graph_assignment_info"):
        return None
    return {node.name: subgraph.ep_name for subgraph in session.get_provider_graph_assignment_info()
            for node in subgraph.get_nodes()}


def takes_nodes(data: bytes, provider: str) -> bool:
    """Whether `provider` takes at least one node of graph `data` here (True when onnxruntime cannot tell)."""
    if provider == CPU:
        return True
    try:
        placed = assigned_nodes(data, provider)
    except Exception:  # onnxruntime's own types: the provider cannot even be set up here
        return False
    return placed is None or provider in placed.values()


def usable_providers(data: bytes, available=None) -> list[str]:
    """The providers of `available` (default: onnxruntime's get_available_providers()) that take nodes of the graph
    `data`, in onnxruntime's order of preference; the CPU's always."""
    available = ort.get_available_providers() if available is None else available
    return [p for p in available if takes_nodes(data, p)] or [CPU]
