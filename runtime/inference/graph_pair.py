"""A variant's encoder and decoder of one model dir as onnxruntime sessions, fed by the manifest's io names, with
every output checked: the one small runner beside VAERuntime. export measures quality, calibrates and searches
with it, `tune` and the benchmarks time it, and VAERuntime checks its own outputs with `check_outputs`.

Its graphs are a variant the manifest lists (`GraphPair.of_variant`: each file's sha256 checked as its session
opens) or graph files export is still building or searching (`GraphPair.of_files`); both must show the
manifest's boundary (runtime/inference/sessions.py). Sessions open on first use, so a pair that only decodes
never builds its encoder. Outputs come back in the graphs' own conventions (pixel range, latent scale, decoder
head): VAERuntime is what maps them onto images in [0, 1].
"""

import threading
from pathlib import Path

import numpy as np

from ..contract.errors import InputError
from ..contract.manifest import GRAPH_NAMES, ModelDir
from ..contract.safe_files import escape
from .run_guard import FIRST_CALL_S
from .sessions import SessionConfig, checked_session, create_session, run_checked

ROWS = 256  # rows per onnxruntime call of GraphPair.run: bounds the graphs' intermediate tensors
HUGE_LATENT = 1e4  # |z| beyond this is the caller's doing when the decoder overflows; below it, the model's


def check_outputs(model: ModelDir, label: str, *, graph: str, values: list, feed: np.ndarray) -> list:
    """values, once each output of graph (its file named by label) on feed has the contract's shape and dtype,
    is finite, and (x_hat of Bernoulli means) lies in [0, 1]: a hostile or broken graph whose hashes match must
    not hand garbage on. ModelDirError naming label otherwise; InputError when the decoder overflowed on a z
    beyond HUGE_LATENT, which is the caller's doing."""
    names = model.manifest.io[graph].outputs
    hw = feed.shape[2:] if graph == "encoder" else model.image_shape_for(feed.shape[2:])[1:]
    means = graph != "decoder" or model.conventions.decoder_head == "bernoulli_means"  # only those have a range
    for name, value, shape in zip(names, values, model.io_shapes(graph, len(feed), image_hw=tuple(hw))[1]):
        if not isinstance(value, np.ndarray) or value.dtype != np.float32 or value.shape != shape:
            got = f"{value.dtype} {list(value.shape)}" if isinstance(value, np.ndarray) else type(value).__name__
            raise model.fail(f"{label} returned {escape(name)} as {got} for a batch of {len(feed)}, expected float32 "
                             f"{list(shape)}")
        # x_hat: min and max in [0, 1] also prove it finite (NaN fails every comparison); one check per pass over
        # the data, as VAERuntime runs this on every call (batch 1 included)
        low, high = (float(value.min()), float(value.max())) if graph == "decoder" and means else (0.0, 1.0)
        if not (0.0 <= low and high <= 1.0) or (not means and not np.isfinite(value).all()):
            _fail_output(model, label, graph, name, value, feed)
    return values


def _fail_output(model: ModelDir, label: str, graph: str, name: str, value: np.ndarray, feed: np.ndarray):
    """Raise the error for an output that is not finite or (x_hat) outside [0, 1]."""
    if not np.isfinite(value).all():
        if graph == "decoder" and float(np.abs(feed).max()) > HUGE_LATENT:
            raise InputError(f"z holds values up to {float(np.abs(feed).max()):g} in magnitude: too large "
                             "for the decoder (its output overflowed to NaN)")
        raise model.fail(f"{label} returned NaN or inf in {escape(name)} for finite input")
    raise model.fail(f"{label} returned {escape(name)} values in [{float(value.min()):g}, "
                     f"{float(value.max()):g}], outside the [0, 1] of Bernoulli means")


class GraphPair:
    """The encoder and decoder sessions of one variant (or of graph files) of a model dir. Build it with
    `of_variant` or `of_files`; it is safe to call from several threads."""

    def __init__(self, model: ModelDir, open_session, *, labels: dict):
        self.model = model
        self._open = open_session  # graph -> a checked InferenceSession
        self._labels = labels  # {graph: file name for messages, escaped}
        self._sessions = {}
        self._lock = threading.Lock()

    @classmethod
    def of_variant(cls, model: ModelDir, variant: str, *, config: SessionConfig = SessionConfig()) -> "GraphPair":
        """The graphs of a variant the manifest lists (ModelDirError when it does not, or when a file fails its
        sha256 or onnxruntime refuses it as its session opens)."""
        if variant not in model.manifest.variants:
            raise model.fail(f"has no variant {escape(variant)}")
        labels = {g: model.file_label(variant, g) for g in GRAPH_NAMES}
        return cls(model, lambda graph: create_session(model, variant, graph=graph, config=config), labels=labels)

    @classmethod
    def of_files(cls, model: ModelDir, files: dict, *, config: SessionConfig = SessionConfig()) -> "GraphPair":
        """The graph files {"encoder": path, "decoder": path} that are not (yet) in the manifest -- a variant
        export is building, or a candidate of its search -- run against model's io names and shapes."""
        if set(files) != set(GRAPH_NAMES):
            raise ValueError(f"files must name exactly the graphs {', '.join(GRAPH_NAMES)}, got {sorted(files)}")
        labels = {g: escape(Path(path).name) for g, path in files.items()}

        def open_session(graph: str):
            return checked_session(model, Path(files[graph]).read_bytes(), file=labels[graph], graph=graph, config=config)

        return cls(model, open_session, labels=labels)

    def session(self, graph: str):
        """graph's session, opened on first use (once, even when several threads ask at the same moment)."""
        session = self._sessions.get(graph)
        if session is None:
            with self._lock:
                session = self._sessions.get(graph)
                if session is None:
                    session = self._sessions[graph] = self._open(graph)
        return session

    def label(self, graph: str) -> str:
        """graph's file name, escaped, as messages name it."""
        return self._labels[graph]

    def feed(self, graph: str, array: np.ndarray) -> dict:
        """The feed of graph with array as its input, under the manifest's input name."""
        return {self.model.manifest.io[graph].inputs[0]: array}

    def call(self, graph: str, array: np.ndarray):
        """A zero-argument callable running graph's session on array, bare (no deadline, outputs unchecked): what
        export's timings of its own graphs call, with nothing between the clock and onnxruntime."""
        session, feed = self.session(graph), self.feed(graph, array)
        return lambda: session.run(None, feed)

    def run_once(self, graph: str, array: np.ndarray, *, timeout_s: float = FIRST_CALL_S,
                 limit: str = "allow more with timeout_s, or --timeout") -> list:
        """graph's outputs on array in one onnxruntime call bounded by timeout_s (run_checked: ModelDirError when
        it fails or runs past it), the values unchecked: what a timing of an untrusted dir calls (tune)."""
        return run_checked(self.model, self.label(graph), session=self.session(graph), feed=self.feed(graph, array), timeout_s=timeout_s, limit=limit)

    def run(self, graph: str, array: np.ndarray, *, rows: int = ROWS) -> list:
        """graph's outputs on array, run `rows` rows per call, each call's outputs checked (check_outputs), then
        concatenated per output."""
        parts = []
        for start in range(0, len(array), rows):
            feed = array[start:start + rows]
            parts.append(check_outputs(self.model, self.label(graph), graph=graph, values=self.run_once(graph, feed), feed=feed))
        return [np.concatenate(outputs) for outputs in zip(*parts)]

    def encode(self, x: np.ndarray, rows: int = ROWS) -> tuple:
        """x [N,C,H,W] in the graph's pixel range -> (mu, logvar), or (z, None) for a deterministic encoder."""
        outputs = self.run("encoder", x, rows=rows)
        return outputs[0], (outputs[1] if len(outputs) == 2 else None)

    def decode(self, z: np.ndarray, rows: int = ROWS) -> np.ndarray:
        """z [N, *latent] as the graph takes it -> its x_hat [N,C,H,W] (the decoder head's values)."""
        return self.run("decoder", z, rows=rows)[0]
