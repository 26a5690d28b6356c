"""PyTorch Encoder / Decoder -> two checked, shape-inferred ONNX graphs with a dynamic batch dimension.

Each half of the VAE is exported alone (torch.onnx.export with the dynamo exporter, onnxscript's
optimizer), so the device can encode without the decoder and sample without the encoder.
"""

from dataclasses import dataclass

import onnx
import torch
from torch import nn

from edgevae import __version__
from edgevae.train.model import VAE

# Opset 20 is torch 2.14's default and is run by every onnxruntime >= 1.17; pinned so the exported
# graphs (and the opset recorded in the manifest) do not change when torch's default moves.
OPSET = 20
BATCH = "batch"  # name of the dynamic batch dimension in every graph, as the model-dir contract says


@dataclass(frozen=True)
class GraphSpec:
    """One graph of the model dir: its file name and boundary names (the contract's "io" entry)."""

    name: str
    file: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


ENCODER = GraphSpec("encoder", "encoder.onnx", ("x",), ("mu", "logvar"))
DECODER = GraphSpec("decoder", "decoder.onnx", ("z",), ("x_hat",))
GRAPHS = {spec.name: spec for spec in (ENCODER, DECODER)}
DETERMINISTIC_ENCODER = GraphSpec("encoder", "encoder.onnx", ("x",), ("z",))  # returns the latent alone


def conventions_of(model):
    """The declared conventions of model (export/custom.py's ContractConfig has them; edgevae's VAE is CLASSIC)."""
    from edgevae.runtime.contract.manifest import CLASSIC

    return getattr(model.config, "conventions", CLASSIC)


def latent_shape_of(model) -> tuple:
    """One item's latent: (D,) or (C, h, w)."""
    return tuple(getattr(model.config, "latent_shape", None) or (model.config.latent_dim,))


def graph_specs(model) -> dict[str, GraphSpec]:
    """{"encoder": spec, "decoder": spec} of model: GRAPHS, or the deterministic encoder's."""
    if conventions_of(model).stochastic:
        return GRAPHS
    return {"encoder": DETERMINISTIC_ENCODER, "decoder": DECODER}


def module_and_example(model: VAE, spec: GraphSpec, *, fold: bool = True) -> tuple[nn.Module, torch.Tensor]:
    """The half of the model that becomes graph `spec`, and an example input (batch 2, so batch is not
    specialised to 1). The seed-family halves (train/model.py) have their adjacent affine layers folded
    (export/fold.py) unless fold is False; a user's own modules (export/custom.py) are exported as they are."""
    from edgevae.train.model import Decoder, Encoder

    from .fold import FoldedDecoder, FoldedEncoder

    if spec.name == "encoder":
        encoder = model.encoder
        if fold and isinstance(encoder, Encoder):
            encoder = FoldedEncoder(encoder, model.config.features)
        return encoder, torch.rand(2, *model.config.image_shape)  # (2,C,H,W)
    decoder = FoldedDecoder(model.decoder) if fold and isinstance(model.decoder, Decoder) else model.decoder
    return decoder, torch.randn(2, *latent_shape_of(model))  # (2,D) or (2,C,h,w)


def dynamic_axes(model, spec: GraphSpec) -> dict:
    """torch.export dims of the graph's input: batch, and for a fully convolutional model H and W (the image's as
    multiples of the downsampling factor, so strided layers divide them exactly)."""
    batch = torch.export.Dim(BATCH, min=1)
    factor = conventions_of(model).downsampling
    if factor is None:
        return {0: batch}
    h, w = torch.export.Dim("h", min=1, max=4096), torch.export.Dim("w", min=1, max=4096)
    return {0: batch, 2: factor * h, 3: factor * w} if spec.name == "encoder" else {0: batch, 2: h, 3: w}


def export_graph(model: VAE, spec: GraphSpec, *, metadata: dict[str, str], fold: bool = True) -> onnx.ModelProto:
    """The ONNX graph of one half of `model` (fp32, opset OPSET, dynamic batch), checked and shape-inferred."""
    module, example = module_and_example(model, spec, fold=fold)
    program = torch.onnx.export(
        module.eval(), (example,), dynamo=True, opset_version=OPSET, optimize=True, verbose=False,
        input_names=list(spec.inputs), output_names=list(spec.outputs),
        dynamic_shapes=(dynamic_axes(model, spec),),  # by position: a user's module may name its argument anything
    )
    proto = program.model_proto  # initializers are held in the proto: saved as one self-contained file
    onnx.helper.set_model_props(proto, metadata | {"graph": spec.name})
    proto.producer_name, proto.producer_version = "edgevae", __version__
    # strict_mode turns a shape inference failure into an error instead of a silently unshaped graph
    proto = onnx.shape_inference.infer_shapes(proto, check_type=True, strict_mode=True, data_prop=True)
    onnx.checker.check_model(proto, full_check=True)
    check_io(proto, spec, latent_dim=latent_shape_of(model), image_shape=tuple(model.config.image_shape),
             dynamic_sizes=conventions_of(model).downsampling is not None)
    return proto


def check_io(proto: onnx.ModelProto, spec: GraphSpec, *, latent_dim, image_shape: tuple[int, int, int],
             dynamic_sizes: bool = False) -> None:
    """Raise ValueError unless the graph's boundary matches the contract: names, float32, [batch, ...] shapes.
    latent_dim: D or the latent's shape; dynamic_sizes: H, W, h and w are symbolic (any name)."""
    latent = (latent_dim,) if isinstance(latent_dim, int) else tuple(latent_dim)
    image = tuple(image_shape)
    if dynamic_sizes:  # the sizes of a fully convolutional model follow its input: compared by rank and channels
        latent, image = (latent[0], "?", "?"), (image[0], "?", "?")
    shapes = {spec.inputs[0]: [BATCH, *image] if spec.name == "encoder" else [BATCH, *latent]}
    for name in spec.outputs:
        shapes[name] = [BATCH, *latent] if spec.name == "encoder" else [BATCH, *image]
    values = list(proto.graph.input) + list(proto.graph.output)
    found = {v.name: [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim] for v in values}
    if dynamic_sizes:
        found = {name: dims[:2] + ["?" if isinstance(d, str) else d for d in dims[2:]] for name, dims in found.items()}
    if found != shapes:
        raise ValueError(f"exported {spec.name} graph has I/O {found}, expected {shapes}")
    for v in values:
        if v.type.tensor_type.elem_type != onnx.TensorProto.FLOAT:
            raise ValueError(f"exported {spec.name} graph has non-float32 I/O {v.name}")


def export_graphs(model: VAE, *, metadata: dict[str, str], fold: bool = True) -> dict[str, onnx.ModelProto]:
    """{"encoder": proto, "decoder": proto} for `model` (switched to eval mode)."""
    model.eval()
    return {name: export_graph(model, spec, metadata=metadata, fold=fold) for name, spec in graph_specs(model).items()}
