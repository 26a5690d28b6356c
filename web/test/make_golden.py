"""Write golden inputs and the Python runtime's outputs for the JS parity tests (web/test/parity.test.mjs).

    python web/test/make_golden.py OUT_DIR [--model MODEL_DIR]

OUT_DIR gets golden.json ({"model", "variants", "arrays": {name: {"file", "dims"}}}) and one raw
little-endian float32 file per array: z (seeded numpy normals, plus a row scaled x4 to reach the sigmoid's
flat ends), x (images to encode), and per variant decode_<v>, mu_<v>, logvar_<v>, interpolate_<v> (x[0] to x[1],
5 steps) from VAERuntime, and decode_<v>_qdq: the same graph
run unfused (see _unfused_decode).
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np


def _unfused_decode(model, variant, z):
    """The decoder with graph optimizations off: quantized graphs then run as written (QuantizeLinear,
    DequantizeLinear and float ops), exact int8 semantics free of any fused kernel's shortcuts (onnxruntime's
    AVX2 u8s8 kernels without VNNI saturate 16-bit pair sums, which moves some outputs by up to ~0.08)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    session = ort.InferenceSession(model.graph_bytes(variant, "decoder"), options, providers=["CPUExecutionProvider"])
    return session.run(None, {model.manifest.io["decoder"].inputs[0]: z})[0]


def write_golden(out: Path, model_dir=None) -> Path:
    from edgevae.runtime import VAERuntime
    from edgevae.runtime.contract.manifest import DEFAULT_MODEL_DIR, load

    model_path = Path(model_dir) if model_dir else DEFAULT_MODEL_DIR
    model = load(model_path)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    z = rng.standard_normal((65, model.latent_dim), dtype=np.float32)
    z[64] *= 4.0
    arrays = {"z": z}
    for variant in sorted(model.manifest.variants):
        rt = VAERuntime.load(model_path, variant=variant)
        arrays[f"decode_{variant}"] = rt.decode(z)
        if "x" not in arrays:
            arrays["x"] = arrays[f"decode_{variant}"][:8].copy()  # images in [0, 1] the model can encode
        arrays[f"mu_{variant}"], arrays[f"logvar_{variant}"] = rt.encode(arrays["x"])
        arrays[f"decode_{variant}_qdq"] = _unfused_decode(model, variant, z)
        arrays[f"interpolate_{variant}"] = rt.interpolate(arrays["x"][0], arrays["x"][1], steps=5)
    write_arrays(out, arrays, {"model": str(model_path.resolve()), "variants": sorted(model.manifest.variants)})
    return out


def write_arrays(out: Path, arrays: dict, meta: dict) -> None:
    """Each array as little-endian float32 in NAME.f32, and golden.json: meta plus {"arrays": {NAME: {file, dims}}},
    what web/test/helpers.mjs reads."""
    meta = {**meta, "arrays": {}}
    for name, array in arrays.items():
        array = np.ascontiguousarray(array, dtype="<f4")
        (out / f"{name}.f32").write_bytes(array.tobytes())
        meta["arrays"][name] = {"file": f"{name}.f32", "dims": list(array.shape)}
    (out / "golden.json").write_text(json.dumps(meta, indent=1))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("--model", type=Path)
    args = parser.parse_args()
    print(write_golden(args.out, args.model))
    sys.exit(0)
