"""onnxruntime sessions for a model dir's graphs, with the session options chosen by measurement
(numbers in the runtime's report and in benchmarks/): see `session_options`."""

from dataclasses import dataclass

import onnxruntime as ort

from .errors import ModelDirError
from .model_dir import ModelDir

DEFAULT_PROVIDERS = ("CPUExecutionProvider",)


@dataclass(frozen=True)
class SessionConfig:
    """How sessions are built. threads=None lets onnxruntime use one intra-op thread per physical core."""

    threads: int | None = None
    providers: tuple = DEFAULT_PROVIDERS


def session_options(config: SessionConfig) -> ort.SessionOptions:
    """Options measured on the decoder (2-core machine shared with a training run; the runtime report
    has the table): ORT_ENABLE_ALL ran batch 64 / 1024 fastest and cost no more session-creation time
    than BASIC; idle intra-op threads that spin made 2 threads 2x slower than 1 under CPU contention,
    while with spinning off 2 threads matched 1 there (and can use idle cores elsewhere)."""
    options = ort.SessionOptions()
    # The graphs are straight chains of convolutions: parallel execution would have nothing to overlap.
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.log_severity_level = 3  # errors only: warnings about unused initializers are noise here
    if config.threads is not None:
        options.intra_op_num_threads = config.threads
    options.inter_op_num_threads = 1
    return options


def _check_io(model: ModelDir, variant: str, graph: str, session) -> None:
    """The graph's input/output names and latent size must be the manifest's."""
    names = model.io[graph]
    inputs = [i.name for i in session.get_inputs()]
    outputs = [o.name for o in session.get_outputs()]
    if inputs != names["inputs"] or outputs != names["outputs"]:
        raise ModelDirError(f"model dir {model.path}: {model.variants[variant][graph]['file']} has inputs {inputs} "
                            f"and outputs {outputs}, the manifest says {names['inputs']} and {names['outputs']}")
    latent_arg = session.get_inputs()[0] if graph == "decoder" else session.get_outputs()[0]
    width = latent_arg.shape[-1] if latent_arg.shape else None
    if isinstance(width, int) and width != model.latent_dim:
        raise ModelDirError(f"model dir {model.path}: {model.variants[variant][graph]['file']} has latent size "
                            f"{width}, the manifest says latent_dim {model.latent_dim}")


def create_session(model: ModelDir, variant: str, graph: str, config: SessionConfig) -> ort.InferenceSession:
    """A checked session for (variant, graph): sha256 verified on the bytes that onnxruntime then loads."""
    data = model.graph_bytes(variant, graph)
    try:
        session = ort.InferenceSession(data, sess_options=session_options(config), providers=list(config.providers))
    except Exception as err:  # onnxruntime raises its own Fail / InvalidGraph / ... types
        first = (str(err).strip().splitlines() or [type(err).__name__])[0]
        raise ModelDirError(f"model dir {model.path}: onnxruntime cannot load "
                            f"{model.variants[variant][graph]['file']}: {first}") from None
    _check_io(model, variant, graph, session)
    return session
