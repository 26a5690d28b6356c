"""onnxruntime sessions for a model dir's graphs, with the session options chosen by measurement
(docs/results.md): see `session_options`."""

from dataclasses import dataclass

import onnxruntime as ort

from ..contract.manifest import ModelDir
from ..contract.onnx_scan import GraphRefused, check_self_contained
from .run_guard import FIRST_CALL_S, RunStopped, run
from ..contract.safe_files import escape

DEFAULT_PROVIDERS = ("CPUExecutionProvider",)


@dataclass(frozen=True)
class SessionConfig:
    """How sessions are built. threads=None lets onnxruntime use one intra-op thread per physical core."""

    threads: int | None = None
    providers: tuple = DEFAULT_PROVIDERS
    optimize: bool = True  # False: onnxruntime's reference path (no fusions; QDQ run as dequantize, fp32 op, quantize)
    timeout_s: float | None = None  # per run; None: run_guard.default_timeout of the measured cost
    spinning: bool = False  # intra-op threads busy-wait for work: see session_options


def session_options(config: SessionConfig) -> ort.SessionOptions:
    """Full graph optimisation (fastest, and no slower to build), sequential execution, and intra-op
    threads that do not spin unless config.spinning: spinning threads burn a core between and during calls
    (an embedded runtime must not drain a phone's battery waiting), and made 2 threads 2x slower than 1 on a
    loaded machine, for a few percent of latency on a quiet one (docs/results.md, Runtime under load)."""
    options = ort.SessionOptions()
    # The graphs are straight chains of convolutions: parallel execution would have nothing to overlap.
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = (ort.GraphOptimizationLevel.ORT_ENABLE_ALL if config.optimize
                                        else ort.GraphOptimizationLevel.ORT_DISABLE_ALL)
    options.add_session_config_entry("session.intra_op.allow_spinning", "1" if config.spinning else "0")
    # fatal only: onnxruntime's own coloured error line would add a second line to ours (errors reach the
    # caller as exceptions, which the runtime turns into one-line ModelDirErrors)
    options.log_severity_level = 4
    if config.threads is not None:
        options.intra_op_num_threads = config.threads
    options.inter_op_num_threads = 1
    return options


def profile(data: bytes, feed: dict, *, runs: int, config: SessionConfig = SessionConfig()) -> tuple[list, list]:
    """onnxruntime's own profiler over `runs` runs of the graph `data` on feed, with the session options devices
    run: ([(node name, op type, kernel us)] for every kernel event, [us of each whole run])."""
    import json
    import os
    import tempfile

    options = session_options(config)
    options.enable_profiling = True
    with tempfile.TemporaryDirectory(prefix="edgevae-profile-") as tmp:
        options.profile_file_prefix = os.path.join(tmp, "ort")
        session = ort.InferenceSession(data, options, providers=list(config.providers))
        for _ in range(runs):
            session.run(None, feed)
        with open(session.end_profiling(), encoding="utf-8") as f:
            events = json.load(f)
    suffix = "_kernel_time"
    kernels = [(e["name"][: -len(suffix)], e.get("args", {}).get("op_name", "?"), e["dur"])
               for e in events if e.get("cat") == "Node" and e["name"].endswith(suffix)]
    return kernels, [e["dur"] for e in events if e.get("cat") == "Session" and e["name"] == "model_run"]


def _check_io(model: ModelDir, file: str, graph: str, session) -> None:
    """The graph's boundary must be the manifest's: names, float32 tensors, and the latent size."""
    names = model.manifest.io[graph]
    inputs, outputs = session.get_inputs(), session.get_outputs()
    if [i.name for i in inputs] != list(names.inputs) or [o.name for o in outputs] != list(names.outputs):
        raise model.fail(f"{file} has inputs {escape([i.name for i in inputs])} and outputs "
                         f"{escape([o.name for o in outputs])}, the manifest says {escape(list(names.inputs))} "
                         f"and {escape(list(names.outputs))}")
    wrong = [arg.name for arg in inputs + outputs if arg.type != "tensor(float)"]
    if wrong:
        raise model.fail(f"{file}: {escape(wrong[0])} is not a float32 tensor (the contract's boundary type)")
    latent_arg = inputs[0] if graph == "decoder" else outputs[0]
    dims = list(latent_arg.shape[1:]) if latent_arg.shape else []
    want = list(model.latent_shape)
    checked = want if model.conventions.downsampling is None else want[:1]  # h and w of such a model follow the image
    if dims and (len(dims) != len(want) or any(isinstance(d, int) and d != w for d, w in zip(dims, checked))):
        if len(want) == 1 and len(dims) == 1:
            raise model.fail(f"{file} has latent size {dims[0]}, the manifest says latent_dim {want[0]}")
        raise model.fail(f"{file} has latent {dims}, the manifest says latent_shape {want}")


def new_session(data: bytes, *, config: SessionConfig = SessionConfig(), control_flow=()) -> ort.InferenceSession:
    """A session of the ONNX graph `data` with the options devices run (export measures parity and quality
    with it too); GraphRefused for a graph that refers to external data or holds control flow other than
    control_flow's operators, onnxruntime's error otherwise."""
    check_self_contained(data, control_flow)
    return ort.InferenceSession(data, sess_options=session_options(config), providers=list(config.providers))


def create_session(model: ModelDir, variant: str, *, graph: str, config: SessionConfig) -> ort.InferenceSession:
    """A checked session for (variant, graph): sha256 verified on the bytes that onnxruntime then loads."""
    return checked_session(model, model.graph_bytes(variant, graph), file=model.file_label(variant, graph), graph=graph, config=config)


def checked_session(model: ModelDir, data: bytes, *, file: str, graph: str, config: SessionConfig) -> ort.InferenceSession:
    """A session of the bytes `data` of graph (its file named by `file`, escaped), its boundary checked against
    model's manifest; ModelDirError naming file when the graph is refused or differs."""
    try:
        session = new_session(data, config=config, control_flow=model.manifest.control_flow or ())
    except GraphRefused as err:
        raise model.fail(f"{file} {err}") from None
    except Exception as err:  # onnxruntime raises its own Fail / InvalidGraph / ... types
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise model.fail(f"onnxruntime cannot load {file}: {escape(first)}") from None
    _check_io(model, file, graph, session)
    return session


def run_checked(model: ModelDir, label: str, *, session: ort.InferenceSession, feed: dict, timeout_s: float = FIRST_CALL_S,
                limit: str = "allow more with timeout_s, or --timeout") -> list:
    """session's outputs on feed, the run bounded by timeout_s (runtime/inference/run_guard.py). The inputs were checked,
    so a failure or a run past its deadline is the graph's fault: ModelDirError naming label (its file). A
    signal's RunStopped passes through for the CLI's handler."""
    n = len(next(iter(feed.values())))
    try:
        return run(session, feed, timeout_s=timeout_s)
    except RunStopped as err:
        if not err.timed_out:
            raise
        raise model.fail(f"{label} ran longer than {timeout_s:.3g} s on a batch of {n} and was stopped ({limit})") from None
    except Exception as err:  # onnxruntime's own types
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise model.fail(f"{label} failed to run on a batch of {n}: {escape(first)}") from None
