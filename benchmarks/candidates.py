"""The engines timed side by side on the same weights: every variant of a model dir through edgevae's
runtime, PyTorch eager, and torch.compile. Each becomes a zero-argument callable on a fixed input, the
form edgevae.timing.interleave takes."""

import time

import numpy as np

from edgevae.runtime.contract.errors import InputError
from edgevae.runtime.contract.manifest import GRAPH_NAMES
from edgevae.runtime.inference.random_input import random_input

PARITY_TOLERANCE = 1e-3  # fp32 graph vs PyTorch on the same weights; export checks 1e-4 on its own inputs
NOT_EDGEVAE = ("the fp32 graphs' initializers are not named after edgevae's PyTorch parameters; pass --torch "
               "MODULE:FACTORY (your own decoder) or --checkpoint (an edgevae run)")


def runtime_call(runtime, graph: str, *, array: np.ndarray):
    """The runtime's public method for graph (encode / decode) on array, as users call it."""
    method = runtime.encode if graph == "encoder" else runtime.decode
    return lambda: method(array)


def torch_modules(model, checkpoint) -> tuple:
    """({"encoder": module, "decoder": module} in eval mode, where the weights came from).

    model: the runtime's ModelDir. With a checkpoint, its weights; without one, the fp32 graphs'
    initializers, which export names after the parameters of the modules it exported: the folded halves
    (export/fold.py) of this edgevae, or the VAE's own halves of a model dir exported before the fold.
    Returns (None, reason) when neither gives every parameter, so the caller records why the PyTorch side
    was skipped.
    """
    import torch

    from edgevae.export.fold import folded
    from edgevae.train.model import VAE, VAEConfig

    if checkpoint is not None:
        from edgevae.train.checkpoint import load_model

        vae, _ = load_model(checkpoint)
        return {"encoder": vae.encoder.eval(), "decoder": vae.decoder.eval()}, f"checkpoint {checkpoint}"
    import onnx
    from onnx import numpy_helper

    if model.manifest.latent_shape is not None and len(model.latent_shape) > 1:
        return None, NOT_EDGEVAE
    try:
        vae = VAE(VAEConfig(latent_dim=model.latent_dim, image_shape=model.image_shape))
    except ValueError:  # an image shape edgevae's network rule does not build: not one of its models
        return None, NOT_EDGEVAE
    halves, modules = folded(vae), {}
    for graph in GRAPH_NAMES:
        proto = onnx.load_model_from_string(model.graph_bytes("fp32", graph))
        weights = {t.name: numpy_helper.to_array(t) for t in proto.graph.initializer}
        for module in (halves[graph], getattr(vae, graph)):
            wanted = module.state_dict()
            if all(k in weights and weights[k].shape == tuple(v.shape) for k, v in wanted.items()):
                module.load_state_dict({k: torch.from_numpy(weights[k].copy()) for k in wanted})
                modules[graph] = module.eval()
                break
        else:
            return None, NOT_EDGEVAE
    return modules, "the fp32 graphs' initializers"


def check_parity(runtime, modules: dict, *, source: str) -> dict:
    """Max abs difference between PyTorch and the runtime's fp32 graphs on 8 seeded inputs per graph in modules.

    Both sides are compared as the runtime's API returns them: the encoder's outputs as they are, the decoder's
    as images in [0, 1], PyTorch's output mapped by the model's declared head as the runtime maps its graph's
    (an identity for edgevae's own Bernoulli means). Raises InputError when above PARITY_TOLERANCE: then the two
    sides do not hold the same model and comparing their speed would be meaningless.
    """
    import torch

    from .torch_decoder import decoded_images

    diffs = {}
    for graph, module in modules.items():
        array = random_input(runtime.model, graph, 8, seed=1, for_api=True)
        if graph == "encoder":
            ours = runtime.encode(array)
            with torch.inference_mode():
                theirs = module(torch.from_numpy(array))
            theirs = [t.numpy() for t in (theirs if isinstance(theirs, tuple) else (theirs,))]
        else:
            ours, theirs = (runtime.decode(array),), (decoded_images(module, array, conventions=runtime.conventions),)
        diffs[graph] = max(float(np.abs(a - b).max()) for a, b in zip(ours, theirs))
        if not diffs[graph] <= PARITY_TOLERANCE:  # NaN fails too
            raise InputError(f"PyTorch weights from {source} differ from the model dir's fp32 {graph} "
                             f"(max abs diff {diffs[graph]:.3g} > {PARITY_TOLERANCE:g}): not the same model")
    return {"max_abs_diff": diffs, "tolerance": PARITY_TOLERANCE, "weights": source,
            "compared": "the runtime API's outputs: encoder (mu, logvar) as they are, decoder images in [0, 1] "
                        "(PyTorch's output through the model's declared decoder head)"}


def torch_call(module, array: np.ndarray):
    """module on array as a tensor (shared memory); the caller holds torch.inference_mode()."""
    import torch

    tensor = torch.from_numpy(array)
    return lambda: module(tensor)


class Compiler:
    """torch.compile for the PyTorch modules, given up (with the reason recorded) when it fails or when
    compiling has taken more than budget_s in all. dynamic=False: one specialised graph per batch size,
    torch.compile's fastest CPU code; each new batch size compiles once, outside the timed calls."""

    def __init__(self, modules: dict | None, *, enabled: bool, budget_s: float, reason: str = "disabled"):
        self.compiled = {}
        self.modules = modules
        self.budget_s = budget_s
        self.compile_s = 0.0
        self.skipped = None if enabled and modules else reason

    def call(self, graph: str, array: np.ndarray):
        """A callable running the compiled module on array (compiled now if needed), or None if skipped or when
        there is no PyTorch module of this graph."""
        if self.skipped or graph not in self.modules:
            return None
        import torch

        try:
            if graph not in self.compiled:
                self.compiled[graph] = torch.compile(self.modules[graph], dynamic=False)
            fn = torch_call(self.compiled[graph], array)
            t0 = time.perf_counter()
            fn()  # compiles for this batch size
            self.compile_s += time.perf_counter() - t0
        except Exception as err:  # inductor raises many types (no compiler, codegen errors, ...)
            first = (str(err).strip().splitlines() or [type(err).__name__])[0]
            self.skipped = f"failed: {type(err).__name__}: {first[:200]}"
            return None
        if self.compile_s > self.budget_s:
            self.skipped = f"compiling took {self.compile_s:.0f} s, over the {self.budget_s:.0f} s budget"
        return fn
