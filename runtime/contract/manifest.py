"""The model dir contract: manifest.json as frozen dataclasses, read safely, checked, hashed and written.

This module is the one owner of the format. export and quantize build a Manifest and `write` it; the
runtime, `info`, `verify` and bench `load` it and read attributes. docs/model-dir.schema.json is generated
from these classes (`python -m edgevae.runtime.contract.schema`), and a test fails when the two drift, so a program in
another language can consume a model dir from that schema and docs/model-dir.md alone.

A model dir is untrusted input. Only regular files directly inside it are opened (O_NOFOLLOW under the dir's
own descriptor, O_NONBLOCK so a FIFO cannot hang the open), their sizes are checked against the manifest (and
the manifest against MAX_MANIFEST_BYTES) before a byte is read, and every graph is hashed before onnxruntime
sees it. Every problem raises ModelDirError with one line naming the dir and the file or field.
"""

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from .errors import InputError, ModelDirError
from .safe_files import escape, read_regular_file, sha256_hex
from .typed_json import doc, parse, short_repr, to_json

FORMAT = "edgevae-model/1"
MANIFEST = "manifest.json"
GRAPH_NAMES = ("encoder", "decoder")
FP32 = "fp32"  # the variant every model dir has
AUTO = "auto"  # per graph and batch size, the variant chosen by measurement (runtime/inference/selection.py)
DEFAULT_MODEL_DIR = Path(__file__).resolve().parents[1] / "default_model"
MAX_MANIFEST_BYTES = 1 << 20  # ours are ~5 KB
MAX_GRAPH_BYTES = 1 << 30  # a VAE for the edge is a few MB; 1 GiB bounds what a hostile manifest can make us read
SHA256 = re.compile(r"[0-9a-f]{64}")
BATCH_KEY = re.compile(r"[1-9][0-9]{0,8}")  # ASCII digits only ('²'.isdigit() is True)
MAX_STATIC_BATCH = 4096  # a fixed-shape graph's batch; the runtime runs it whole, so a hostile manifest is bounded


PIXEL_RANGES = ((0.0, 1.0), (-1.0, 1.0))
# What the decoder's output means (Conventions.decoder_head); the runtimes map each onto images in [0, 1].
DECODER_HEADS = ("bernoulli_means", "bernoulli_logits", "gaussian_mean", "image")
LIKELIHOOD_HEADS = ("bernoulli_means", "bernoulli_logits", "gaussian_mean")  # those that define p(x|z), hence nats
POSTERIORS = ("gaussian", "deterministic")
PRIORS = ("standard_normal", "none")
MAX_LATENT_RANK = 3  # [D] or [C, h, w] per item


def _graph_map(value, what: str) -> None:
    if set(value) != set(GRAPH_NAMES):
        raise ValueError(f"{what} must have exactly the graphs {', '.join(GRAPH_NAMES)}, got {sorted(value)}")


@dataclass(frozen=True)
class FileEntry:
    """One file of the model dir."""

    file: str = doc("plain file name inside the model dir (no folders, no links)")
    sha256: str = doc("lower-case hex sha256 of the file's bytes")
    bytes: int = doc("the file's size in bytes; checked before the file is read")

    def __post_init__(self):
        if not self.file or self.file in (".", "..") or "/" in self.file or "\\" in self.file or "\0" in self.file:
            raise ValueError(f"file {self.file!r} is not a plain file name inside the dir")
        if not SHA256.fullmatch(self.sha256):
            raise ValueError(f"sha256 of {self.file!r} is not 64 lower-case hex digits")
        if not 0 < self.bytes <= MAX_GRAPH_BYTES:
            raise ValueError(f"bytes of {self.file!r} is {self.bytes}, outside 1..{MAX_GRAPH_BYTES}")


@dataclass(frozen=True)
class GraphIO:
    """Boundary names of one graph (float32 tensors, batch dimension first)."""

    inputs: tuple[str, ...] = doc("input names; the first is the one fed")
    outputs: tuple[str, ...] = doc("output names, in the order the graph returns them")


@dataclass(frozen=True)
class Parity:
    """fp32 graphs in onnxruntime (the runtime's session options) against PyTorch, measured by export."""

    tolerance: float = doc("export refuses graphs whose max abs difference exceeds this")
    metric: str = doc("what max_abs_diff measures")
    onnxruntime: str = doc("onnxruntime version that measured it")
    torch: str = doc("PyTorch version that measured it")
    encoder_inputs: str = doc("which images fed the encoder")
    decoder_inputs: str = doc("which latents fed the decoder")
    max_abs_diff: dict[str, dict[str, dict[str, float]]] = doc("{graph: {batch size: {output: max abs difference}}}")
    sizes: dict[str, dict[str, dict[str, float]]] | None = doc(
        "fully convolutional models: {\"CxHxW\" of a second image size: {graph: {output: max abs difference}}} at batch 2, "
        "proving the dynamic H and W", default=None)


@dataclass(frozen=True)
class Training:
    """Where the weights came from (copied from the training run)."""

    epoch: int = doc("epochs trained")
    final: dict[str, float] = doc("final test metrics in nats per image (test_neg_elbo, test_bce, test_kl, iwae_nll, ...)")
    train_config: dict = doc("the training run's settings, as `edgevae train` saved them")


@dataclass(frozen=True)
class NllCost:
    """What a variant costs in likelihood: IWAE NLL through it and through fp32 on the same test images,
    with the same importance-sampling noise, so the per-image differences are paired."""

    nll: float = doc("IWAE NLL in nats per image through this variant")
    nll_fp32: float = doc("the same through fp32")
    cost: float = doc("mean over images of nll - nll_fp32, nats per image")
    cost_stderr: float = doc("standard error of that mean (spread of the paired per-image differences / sqrt(images))")
    k: int = doc("importance samples per image")
    images: int = doc("number of test images (the first ones)")


@dataclass(frozen=True)
class Quality:
    """A variant measured against the fp32 graphs by quantize (onnxruntime, same inputs and seeded noise)."""

    decoder_max_abs_diff: float = doc("max |x_hat - x_hat_fp32| over decoder_samples draws of z ~ N(0, I)")
    decoder_psnr_db: float | None = doc("PSNR of those x_hat against fp32 in dB; null when identical")
    decoder_samples: int = doc("number of z decoded")
    encoder_mu_max_abs_diff: float = doc("max |mu - mu_fp32| over the test images")
    encoder_logvar_max_abs_diff: float | None = doc("max |logvar - logvar_fp32| over the test images (null: a "
                                                    "deterministic encoder)")
    test_neg_elbo: float | None = doc("-ELBO in nats per image through this variant (one seeded posterior draw per "
                                      "image); null when the model declares no likelihood or no Gaussian posterior")
    test_neg_elbo_fp32: float | None = doc("the same through fp32")
    neg_elbo_rel_change: float | None = doc("(test_neg_elbo - test_neg_elbo_fp32) / test_neg_elbo_fp32")
    test_images: int = doc("number of test images")
    bytes: int = doc("encoder + decoder file sizes")
    size_vs_fp32: float = doc("bytes / fp32 bytes")
    settings: dict = doc("how the variant was built (quantization format, calibration, rewrites, fp32 nodes)")
    nll: NllCost | None = doc("IWAE NLL cost vs fp32 (absent when quantize ran with --nll-images 0)", default=None)


@dataclass(frozen=True)
class Latency:
    """Timings behind the selection, taken by `quantize --select` on the machine that ran it."""

    threads: int | None = doc("intra-op threads used; null: onnxruntime's default")
    eligible: tuple[str, ...] = doc("variants inside the accuracy budget")
    by_variant: dict[str, dict[str, dict[str, float]]] = doc("{variant: {graph: {batch size: median ms}}}")


@dataclass(frozen=True)
class OrtGraph:
    """A graph also saved in onnxruntime's .ort format (for minimal builds)."""

    file: str = doc("plain file name")
    sha256: str = doc("hex sha256")
    bytes: int = doc("size in bytes")
    max_abs_diff_vs_onnx: float = doc("max abs difference of its outputs against the .onnx graph")


@dataclass(frozen=True)
class OrtFormat:
    """The optional .ort copies of the fp32 graphs (`export --ort-format`)."""

    onnxruntime: str = doc("onnxruntime version that converted them")
    optimization_style: str = doc("onnxruntime optimization style")
    optimization_level: str = doc("graph optimization level baked in")
    graphs: dict[str, OrtGraph] = doc("{graph: .ort file}")
    required_operators: dict = doc("required_operators.config for a reduced onnxruntime build: file entry and operators")


@dataclass(frozen=True)
class Golden:
    """Golden inputs and the expected outputs of every variant, stored as .npy files (float32, no pickle), so a
    device can prove with `edgevae verify` that the copy it holds computes what was exported
    (runtime/device/golden.py writes them and documents the tolerance rule)."""

    inputs: dict[str, FileEntry] = doc("{graph: .npy of the batch fed}: encoder images float32 [N, C, H, W] in [0, 1], "
                                       "decoder latents float32 [N, D]")
    outputs: dict[str, dict[str, dict[str, FileEntry]]] = doc(
        "{variant: {graph: {output name: .npy of the expected output, float32}}}")
    tolerance: dict[str, dict[str, float]] = doc("{variant: {graph: the max abs difference verify accepts}}")
    measured: dict[str, dict[str, float]] = doc("{variant: {graph: the largest difference measured when the goldens "
                                                "were made (the rule's input)}}")
    safety_factor: float = doc("tolerance >= safety_factor x max(measured of the variant, measured of fp32)")
    rule: str = doc("how measured was taken and tolerance derived, in words")
    threads: tuple[int, ...] = doc("intra-op thread counts whose outputs were compared")
    onnxruntime: str = doc("onnxruntime version that computed the expected outputs")
    source: str = doc("where the expected outputs came from (export, quantize, or the runtime for the shipped model)")
    reference: dict[str, dict[str, float]] = doc(
        "{variant: {graph: largest difference between onnxruntime's fused and unoptimized kernels over 256 "
        "inputs}}: what other CPUs' kernels may differ by", default_factory=dict)
    reference_factor: float = doc("tolerance >= reference_factor x reference", default=1.5)

    def __post_init__(self):
        _graph_map(self.inputs, "golden.inputs")
        for variant, graphs in self.outputs.items():
            _graph_map(graphs, f"golden.outputs.{variant}")
            if set(self.tolerance.get(variant, {})) != set(GRAPH_NAMES):
                raise ValueError(f"golden.tolerance must give every graph of variant {variant!r}")
        for variant, graphs in self.tolerance.items():
            if any(not 0 <= t < float("inf") for t in graphs.values()):
                raise ValueError(f"golden.tolerance.{variant} must be finite and >= 0")

    def file_entries(self) -> list[FileEntry]:
        return [*self.inputs.values(), *(e for graphs in self.outputs.values() for outs in graphs.values()
                                         for e in outs.values())]


@dataclass(frozen=True)
class StaticShape:
    """A fixed-shape variant: its base variant's graphs with every input and output shape fixed to one batch size
    (what NNAPI and other NPUs need). It computes what its base computes; a runtime runs it on batches of
    exactly `batch` rows and never pads a batch to fit it."""

    base: str = doc("the variant (with a dynamic batch) whose graphs these are")
    batch: int = doc(f"the fixed batch size, 1..{MAX_STATIC_BATCH}")


@dataclass(frozen=True)
class TargetFit:
    """How much of one graph one execution provider would take, as onnxruntime judges it (`edgevae check`)."""

    nodes: int = doc("nodes in the graph after onnxruntime's basic optimizations (what a provider is offered)")
    taken: int | None = doc("nodes the provider would take; null when it cannot be told on the machine that checked")
    partitions: int | None = doc("connected groups of taken nodes (each one hand-off to and from the provider)")
    method: str = doc("how it was found: onnxruntime's usability checker on its shipped operator list, or a "
                      "session on the checking machine")
    why: dict[str, str] = doc("{operator or reason: why those nodes stay off the provider}", default_factory=dict)


@dataclass(frozen=True)
class Targets:
    """Which execution providers (NNAPI, CoreML, XNNPACK, QNN, CPU) could run each graph, recorded by export and
    quantize (export/check.py), so a device with the base install can read it (`edgevae info`)."""

    onnxruntime: str = doc("onnxruntime version whose checker and operator lists were used")
    fits: dict[str, dict[str, dict[str, TargetFit]]] = doc("{variant: {graph: {target: fit}}}")


@dataclass(frozen=True)
class Conventions:
    """How a model's graphs speak, declared by its exporter and applied by the runtimes, whose APIs take and return
    images in [0, 1] and latents in the model's own convention. A manifest without it is edgevae's own family:
    every default below (Bernoulli means over [0, 1] pixels, Gaussian posterior, N(0, I) prior, fixed image size)."""

    pixel_range: tuple[float, float] = doc("[low, high] of the pixels the encoder takes and an image or Gaussian "
                                           "decoder head gives: [0, 1] or [-1, 1]", default=(0.0, 1.0))
    decoder_head: str = doc("what x_hat is: bernoulli_means (in [0, 1]), bernoulli_logits, gaussian_mean (mean of "
                            "N(x; x_hat, decoder_scale^2) in pixel_range units) or image (pixel_range, no likelihood)",
                            default="bernoulli_means")
    decoder_scale: float | None = doc("gaussian_mean only: the standard deviation of p(x|z) (fixed, or the learned "
                                      "global value at export)", default=None)
    posterior: str = doc("gaussian: the encoder returns mu and logvar; deterministic: it returns the latent alone and "
                         "reparameterize is the identity", default="gaussian")
    prior: str = doc("standard_normal: sample draws the graph's latent from N(0, I); none: the model has no prior "
                     "and sample is refused", default="standard_normal")
    latent_scale: float = doc("the model's latents are (graph latent - latent_shift) x latent_scale (a latent-"
                              "diffusion scaling_factor); the runtime maps them back before decoding", default=1.0)
    latent_shift: float = doc("see latent_scale (a latent-diffusion shift_factor)", default=0.0)
    downsampling: int | None = doc("fully convolutional models: image H and W are this factor times the latent's h "
                                   "and w, and both graphs take any size that divides; null: image_shape only",
                                   default=None)
    receptive_field: int | None = doc("the decoder's receptive field radius in latent pixels, when bounded (tiled "
                                      "decode overlaps tiles by at least this); null: unbounded or unknown",
                                      default=None)

    def __post_init__(self):
        if tuple(self.pixel_range) not in PIXEL_RANGES:
            raise ValueError(f"pixel_range {list(self.pixel_range)} is not [0, 1] or [-1, 1]")
        for name, value, allowed in (("decoder_head", self.decoder_head, DECODER_HEADS),
                                     ("posterior", self.posterior, POSTERIORS), ("prior", self.prior, PRIORS)):
            if value not in allowed:
                raise ValueError(f"{name} {short_repr(value)} is not one of {', '.join(allowed)}")
        if self.decoder_head.startswith("bernoulli") and tuple(self.pixel_range) != (0.0, 1.0):
            raise ValueError(f"decoder_head {self.decoder_head} models pixels in [0, 1], not {list(self.pixel_range)}")
        if (self.decoder_head == "gaussian_mean") != (self.decoder_scale is not None):
            raise ValueError("decoder_scale is given exactly when decoder_head is gaussian_mean")
        if self.decoder_scale is not None and not self.decoder_scale > 0:
            raise ValueError(f"decoder_scale {self.decoder_scale} must be > 0")
        if not self.latent_scale > 0:
            raise ValueError(f"latent_scale {self.latent_scale} must be > 0")
        for name in ("downsampling", "receptive_field"):
            value = getattr(self, name)
            if value is not None and not 1 <= value <= 1024:
                raise ValueError(f"{name} {value} is outside 1..1024")

    @property
    def likelihood(self) -> bool:
        """Whether the decoder defines p(x|z), so that nats (-ELBO, NLL) mean something."""
        return self.decoder_head in LIKELIHOOD_HEADS

    @property
    def stochastic(self) -> bool:
        return self.posterior == "gaussian"


CLASSIC = Conventions()  # edgevae's own family: what a manifest without conventions declares


@dataclass(frozen=True)
class Manifest:
    """manifest.json of a model dir."""

    format: str = doc(f'always "{FORMAT}"')
    edgevae_version: str = doc("edgevae version that wrote it")
    latent_dim: int = doc("D: values in one item's latent (the product of latent_shape); the decoder's input is "
                          "[N, D] when latent_shape is absent")
    image_shape: tuple[int, int, int] = doc("[C, H, W] of every image in and out (the native size of a fully "
                                            "convolutional model), pixel values in conventions.pixel_range")
    opset: int = doc("ONNX opset of the graphs")
    io: dict[str, GraphIO] = doc("{graph: boundary names}; graphs are encoder (x -> mu, logvar; x -> z for a "
                                 "deterministic posterior) and decoder (z -> x_hat)")
    variants: dict[str, dict[str, FileEntry]] = doc(f'{{variant: {{graph: file}}}}; "{FP32}" is always present')
    parity: Parity | None = doc("fp32 parity with PyTorch", default=None)
    training: Training | None = doc("training summary", default=None)
    quality: dict[str, Quality] = doc("{variant: quality vs fp32} for the non-fp32 variants", default_factory=dict)
    selection: dict[str, dict[str, str]] = doc(
        "{graph: {min batch size: variant}}: the variant `auto` runs at batch sizes from that key up to the next",
        default_factory=dict)
    latency_ms: Latency | None = doc("timings behind `selection`", default=None)
    ort: OrtFormat | None = doc("the optional .ort copies", default=None)
    golden: Golden | None = doc("golden inputs and expected outputs per variant, for `edgevae verify`", default=None)
    control_flow: tuple[str, ...] | None = doc("operators with subgraphs (Loop, Scan, If, ...) that the producer declares "
                                               "its graphs use; a graph holding any other is refused at load", default=None)
    static: dict[str, StaticShape] = doc("{variant: its base and fixed batch} for the fixed-shape variants",
                                         omit_empty=True, default_factory=dict)
    targets: Targets | None = doc("which execution providers could run each graph (`edgevae check`)", default=None)
    latent_shape: tuple[int, ...] | None = doc("the latent of one item: [D] or [C, h, w] (at image_shape); its product "
                                               "is latent_dim; absent: [latent_dim]", default=None)
    conventions: Conventions | None = doc("pixel range, decoder head, posterior, prior, latent scale and shift, "
                                          "fully convolutional factor; absent: edgevae's own family", default=None)

    def __post_init__(self):
        if self.format != FORMAT:
            raise ValueError(f"format {self.format!r} is not {FORMAT!r} (re-export it with this edgevae: "
                             "edgevae export CHECKPOINT --out DIR)")
        if self.latent_dim < 1:
            raise ValueError(f"latent_dim {self.latent_dim} is not a positive integer")
        if min(self.image_shape) < 1:
            raise ValueError(f"image_shape {list(self.image_shape)} is not [C, H, W] of positive sizes")
        _graph_map(self.io, "io")
        self._check_latent()
        encoder_outputs = 2 if (self.conventions or CLASSIC).stochastic else 1
        for graph, names in self.io.items():
            want = encoder_outputs if graph == "encoder" else 1
            if len(names.inputs) != 1 or len(names.outputs) != want:
                raise ValueError(f"io.{graph} must have 1 input and {want} output(s)")
        if FP32 not in self.variants:
            raise ValueError(f"variants must include {FP32!r}")
        for variant, graphs in self.variants.items():
            if variant == AUTO or not variant:
                raise ValueError(f"variant name {variant!r} is reserved")
            _graph_map(graphs, f"variants.{variant}")
        for graph, choice in self.selection.items():
            if graph not in GRAPH_NAMES:
                raise ValueError(f"selection names graph {graph!r}, not one of {', '.join(GRAPH_NAMES)}")
            for size, variant in choice.items():
                if not BATCH_KEY.fullmatch(size):
                    raise ValueError(f"selection.{graph} key {size!r} is not a positive batch size")
                if variant not in self.variants:
                    raise ValueError(f"selection.{graph}.{size} names variant {variant!r}, which the manifest lacks")
        unknown = [v for v in (self.golden.outputs if self.golden else ()) if v not in self.variants]
        if unknown:
            raise ValueError(f"golden.outputs names variant {unknown[0]!r}, which the manifest lacks")
        self._check_static()

    def _check_static(self) -> None:
        """Each fixed-shape variant is listed, has a listed dynamic base, a bounded batch, and is the only one for
        its (base, batch); `selection` names dynamic variants only (a runtime swaps the fixed ones in by batch)."""
        seen = set()
        for variant, shape in self.static.items():
            if variant not in self.variants or shape.base not in self.variants or shape.base in self.static:
                raise ValueError(f"static.{variant} must name a listed variant whose base is a listed variant "
                                 f"with a dynamic batch, got base {shape.base!r}")
            if not 1 <= shape.batch <= MAX_STATIC_BATCH:
                raise ValueError(f"static.{variant}.batch {shape.batch} is outside 1..{MAX_STATIC_BATCH}")
            if (shape.base, shape.batch) in seen:
                raise ValueError(f"static lists two variants of {shape.base!r} at batch {shape.batch}")
            seen.add((shape.base, shape.batch))
        chosen = [v for choice in self.selection.values() for v in choice.values() if v in self.static]
        if chosen:
            raise ValueError(f"selection names the fixed-shape variant {chosen[0]!r}; it must name its base")

    def _check_latent(self) -> None:
        """latent_shape against latent_dim, and a fully convolutional factor against both shapes."""
        shape = self.latent_shape or (self.latent_dim,)
        if len(shape) not in (1, MAX_LATENT_RANK) or min(shape) < 1:
            raise ValueError(f"latent_shape {list(shape)} is not [D] or [C, h, w] of positive sizes")
        if _product(shape) != self.latent_dim:
            raise ValueError(f"latent_shape {list(shape)} holds {_product(shape)} values, latent_dim says {self.latent_dim}")
        factor = (self.conventions or CLASSIC).downsampling
        if factor is not None and (len(shape) != 3 or [factor * s for s in shape[1:]] != list(self.image_shape[1:])):
            raise ValueError(f"downsampling {factor} needs latent_shape [C, h, w] with image_shape [C, {factor}h, "
                             f"{factor}w], got {list(shape)} and {list(self.image_shape)}")

    def file_entries(self) -> list[FileEntry]:
        """Every file the manifest names: graphs, then golden arrays."""
        graphs = [entry for graphs in self.variants.values() for entry in graphs.values()]
        return graphs + (self.golden.file_entries() if self.golden else [])

    def to_json(self) -> dict:
        return to_json(self)


def _product(shape) -> int:
    total = 1
    for size in shape:
        total *= int(size)
    return total


def parse_manifest(obj) -> Manifest:
    return parse(Manifest, obj)


def file_entry(path) -> FileEntry:
    """The FileEntry of a file just written (by export or quantize)."""
    path = Path(path)
    return FileEntry(file=path.name, sha256=sha256_hex(path.read_bytes()), bytes=path.stat().st_size)


@dataclass(frozen=True)
class ModelDir:
    """A model dir whose manifest passed every check: its path and Manifest, and its files read safely."""

    path: Path
    manifest: Manifest

    @property
    def latent_dim(self) -> int:
        return self.manifest.latent_dim

    @property
    def image_shape(self) -> tuple:
        return self.manifest.image_shape

    @property
    def latent_shape(self) -> tuple:
        """One item's latent at image_shape: (D,) or (C, h, w)."""
        return tuple(self.manifest.latent_shape or (self.manifest.latent_dim,))

    @property
    def conventions(self) -> Conventions:
        return self.manifest.conventions or CLASSIC

    def latent_shape_for(self, image_hw: tuple) -> tuple:
        """The latent of one item for an image of image_hw = (H, W) (a fully convolutional model's sizes follow it)."""
        factor = self.conventions.downsampling
        if factor is None:
            return self.latent_shape
        return (self.latent_shape[0], image_hw[0] // factor, image_hw[1] // factor)

    def image_shape_for(self, latent_hw: tuple) -> tuple:
        """The image of one item decoded from a latent of latent_hw = (h, w)."""
        factor = self.conventions.downsampling
        if factor is None:
            return tuple(self.image_shape)
        return (self.image_shape[0], latent_hw[0] * factor, latent_hw[1] * factor)

    def fail(self, what: str) -> ModelDirError:
        return ModelDirError(f"model dir {escape(self.path)}: {what}")

    def file_label(self, variant: str, graph: str) -> str:
        """The file name of (variant, graph), escaped for messages."""
        return escape(self.manifest.variants[variant][graph].file)

    def io_shapes(self, graph: str, n: int, *, image_hw: tuple | None = None) -> tuple:
        """(input shape, [output shapes]) of graph on a batch of n, as the contract fixes them; image_hw: the
        images' (H, W) for a fully convolutional model (default: image_shape's)."""
        hw = tuple(image_hw or self.image_shape[1:])
        latent, image = (n, *self.latent_shape_for(hw)), (n, self.image_shape[0], *hw)
        outputs = len(self.manifest.io["encoder"].outputs)
        return {"encoder": (image, [latent] * outputs), "decoder": (latent, [image])}[graph]

    def check_variant(self, variant) -> str:
        """variant if it is `auto` or one the manifest lists; InputError for a non-string, ModelDirError
        naming the choices for a variant the dir lacks."""
        if not isinstance(variant, str):
            raise InputError(f"variant must be a string, got {type(variant).__name__}")
        if variant != AUTO and variant not in self.manifest.variants:
            raise self.fail(f"has no variant {escape(short_repr(variant))} (has: "
                            f"{', '.join(escape(v) for v in sorted(self.manifest.variants))}, or '{AUTO}')")
        return variant

    def read(self, entry: FileEntry) -> bytes:
        """The bytes of a file the manifest lists, checked for size, type and sha256."""
        try:
            data = read_regular_file(self.path, entry.file, max_bytes=MAX_GRAPH_BYTES, exact=entry.bytes)
        except FileNotFoundError:
            raise self.fail(f"{escape(entry.file)} is missing") from None
        except OSError as err:
            raise self.fail(f"cannot read {escape(entry.file)}: {err.strerror or err}") from None
        except ValueError as err:  # not a regular file, a link, or of the wrong size: the message names it
            raise self.fail(str(err)) from None
        if sha256_hex(data) != entry.sha256:
            raise self.fail(f"{escape(entry.file)} does not match its sha256 in the manifest (file changed or corrupt)")
        return data

    def graph_bytes(self, variant: str, graph: str) -> bytes:
        """The ONNX file of (variant, graph), read once and checked."""
        return self.read(self.manifest.variants[variant][graph])

    def verify(self) -> None:
        """Hash every file the manifest lists (ModelDirError on the first that does not match)."""
        for entry in self.manifest.file_entries():
            self.read(entry)


def resolve_path(model_dir) -> Path:
    """model_dir as a Path (None: the default model shipped in the package); InputError for other types, bytes
    paths, an empty string or a NUL character."""
    if model_dir is None:
        return DEFAULT_MODEL_DIR
    try:
        text = os.fspath(model_dir) if isinstance(model_dir, (str, os.PathLike)) else None
    except TypeError:  # __fspath__ returned neither str nor bytes
        text = None
    if not isinstance(text, str) or not text or "\0" in text:
        got = repr(model_dir)[:40] if isinstance(model_dir, str) else type(model_dir).__name__
        raise InputError(f"model_dir must be a path (a non-empty str or os.PathLike without NUL) or None, got {got}")
    return Path(text)


def load(model_dir=None) -> ModelDir:
    """The checked model dir at model_dir (None: the default model shipped in the package).

    ModelDirError when the dir or its manifest is missing, unreadable, too large, not JSON, of another format,
    lacks or mistypes a field, or names a file that is not a regular file inside the dir. File hashes are
    checked when a file is read (ModelDir.read), or all at once by ModelDir.verify.
    """
    path = resolve_path(model_dir)
    where = f"model dir {escape(path)}"
    if model_dir is None and not (path / MANIFEST).is_file():
        raise ModelDirError(f"no default model in this install ({escape(path)} has no {MANIFEST}); "
                            "pass a model dir (--model DIR) made by `edgevae export`")
    if not path.is_dir():
        raise ModelDirError(f"{where}: does not exist or is not a folder")
    try:
        data = read_regular_file(path, MANIFEST, max_bytes=MAX_MANIFEST_BYTES)
    except FileNotFoundError:
        raise ModelDirError(f"{where}: has no {MANIFEST} (not an edgevae model dir)") from None
    except (OSError, ValueError) as err:
        raise ModelDirError(f"{where}: cannot read {MANIFEST}: {getattr(err, 'strerror', None) or err}") from None
    return ModelDir(path, parse_bytes(data, where))


def parse_bytes(data: bytes, where: str) -> Manifest:
    """The Manifest in the bytes of a manifest.json; ModelDirError starting with `where` otherwise."""
    try:
        obj = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError:
        raise ModelDirError(f"{where}: {MANIFEST} is not UTF-8 text") from None
    except json.JSONDecodeError as err:
        raise ModelDirError(f"{where}: {MANIFEST} is not valid JSON ({err.msg} at line {err.lineno})") from None
    except RecursionError:
        raise ModelDirError(f"{where}: {MANIFEST} is nested too deeply") from None
    try:
        return parse_manifest(obj)
    except ValueError as err:
        raise ModelDirError(f"{where}: {MANIFEST}: {escape(err)}") from None


def write(model_dir, manifest: Manifest) -> None:
    """Write model_dir/manifest.json atomically, mode 0644 like every file of a model dir."""
    from edgevae.atomic import write_json

    parse_manifest(manifest.to_json())  # what we write must be what we would accept
    write_json(Path(model_dir) / MANIFEST, manifest.to_json(), mode=0o644)
