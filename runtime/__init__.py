"""edgevae.runtime: run an exported edgevae model with onnxruntime and numpy only (no torch, no onnx).

    from edgevae.runtime import VAERuntime
    rt = VAERuntime.load()            # the default model shipped in the package
    grid = rt.sample(64, seed=0)      # float32 [64,1,28,28] in [0,1]

Names are imported on first use (PEP 562), so `import edgevae.runtime` costs nothing until then.
"""

from importlib import import_module

_EXPORTS = {
    "VAERuntime": "edgevae.runtime.inference.vae",
    "ModelDirError": "edgevae.runtime.contract.errors",
    "InputError": "edgevae.runtime.contract.errors",
    "DEFAULT_MODEL_DIR": "edgevae.runtime.contract.manifest",
}
__all__ = list(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'edgevae.runtime' has no attribute {name!r}")
    return getattr(import_module(_EXPORTS[name]), name)


def __dir__():
    return sorted(list(globals()) + __all__)
