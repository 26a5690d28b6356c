"""Subcommands `sample`, `reconstruct`, `interpolate` and `info` (argument parsing only: numpy and
onnxruntime are imported when one of them runs)."""

from pathlib import Path


def _model_args(p, variant: bool = True) -> None:
    p.add_argument("--model", type=Path, help="model dir made by `edgevae export` (default: the model shipped in the package)")
    if variant:
        p.add_argument("--variant", default="auto",
                       help="fp32, int8, int8-dynamic, fp16, or auto: the manifest's choice for the batch size (default)")
        p.add_argument("--threads", type=int, help="intra-op threads per session (default: one per physical core)")


def register(sub) -> None:
    p = sub.add_parser("sample", help="decode N draws of z ~ N(0, I) to a PNG grid or a .npy array")
    _model_args(p)
    p.add_argument("--n", type=int, required=True, help="number of samples")
    p.add_argument("--seed", type=int, default=0, help="noise seed (default 0): same seed, same samples")
    p.add_argument("--out", type=Path, required=True, help="FILE.png (grid) or FILE.npy (float32 [N,1,28,28])")
    p.set_defaults(run=_sample, extra=None)

    p = sub.add_parser("reconstruct", help="encode and decode images from an IDX (raw or .gz), .npy or .png file")
    _model_args(p)
    p.add_argument("--input", type=Path, required=True, help="images: IDX (raw or .gz), .npy, or .png (one image or a grid)")
    p.add_argument("--limit", type=int, default=64, help="use the first N images (default 64)")
    p.add_argument("--seed", type=int, help="decode a reparameterized draw with this seed (default: decode the mean)")
    p.add_argument("--out", type=Path, required=True, help="FILE.png (rows of originals over their reconstructions) or FILE.npy")
    p.set_defaults(run=_reconstruct, extra=None)

    p = sub.add_parser("interpolate", help="decode the straight line between two images' latent means")
    _model_args(p)
    p.add_argument("--input", type=Path, required=True, help="images: IDX (raw or .gz), .npy, or .png")
    p.add_argument("--a", type=int, default=0, help="index of the first image (default 0)")
    p.add_argument("--b", type=int, default=1, help="index of the last image (default 1)")
    p.add_argument("--steps", type=int, default=8, help="frames, ends included (default 8)")
    p.add_argument("--out", type=Path, required=True, help="FILE.png (one row) or FILE.npy")
    p.set_defaults(run=_interpolate, extra=None)

    p = sub.add_parser("info", help="check a model dir's files and print its manifest summary")
    _model_args(p, variant=False)
    p.set_defaults(run=_info, extra=None)


def _load(args):
    from .vae import VAERuntime

    return VAERuntime.load(args.model, variant=args.variant, threads=args.threads)


def _sample(args) -> None:
    import shutil

    import numpy as np

    from .checks import check_count
    from .image_files import MAX_PNG_IMAGES, NpyWriter, check_output_path, write_images

    out = check_output_path(args.out)
    n = check_count("--n", args.n)
    if out.suffix.lower() == ".png" and n > MAX_PNG_IMAGES:
        raise ValueError(f"--n {n} is too many for a PNG grid (at most {MAX_PNG_IMAGES}); write .npy")
    rt = _load(args)
    if out.suffix.lower() == ".png":
        write_images(out, rt.sample(n, args.seed))
        return
    need = 128 + n * 4 * int(np.prod(rt.image_shape))  # .npy header + float32 pixels
    free = shutil.disk_usage(out.parent).free
    if need > free:  # refused now rather than after hours of decoding
        raise ValueError(f"--n {n} needs {need / 1e9:.3g} GB for {out}; {out.parent} has {free / 1e9:.3g} GB free")
    with NpyWriter(out, (n, *rt.image_shape)) as npy:
        for chunk in rt.iter_samples(n, args.seed):
            npy.write(chunk)


def _read_input(args, rt):
    from .image_files import read_images

    return read_images(args.input, size=rt.image_shape[1:])


def _reconstruct(args) -> None:
    import numpy as np

    from .checks import check_count
    from .image_files import check_output_path, write_images

    out = check_output_path(args.out)
    limit = check_count("--limit", args.limit)
    rt = _load(args)
    x = _read_input(args, rt)[:limit]
    x_hat = rt.reconstruct(x, seed=args.seed)
    if out.suffix.lower() == ".npy":
        write_images(out, x_hat)
        return
    # PNG: rows of up to 8 originals, each followed by a row of their reconstructions.
    columns = min(8, len(x))
    rows = []
    for start in range(0, len(x), columns):
        for part in (x[start:start + columns], x_hat[start:start + columns]):
            rows.append(np.concatenate([part, np.zeros((columns - len(part), *part.shape[1:]), np.float32)]))
    write_images(out, np.concatenate(rows), columns=columns)


def _interpolate(args) -> None:
    from .checks import check_count
    from .image_files import MAX_PNG_IMAGES, check_output_path, write_images

    out = check_output_path(args.out)
    steps = check_count("--steps", args.steps, minimum=2)
    if out.suffix.lower() == ".png" and steps > MAX_PNG_IMAGES:
        raise ValueError(f"--steps {steps} is too many for a PNG row (at most {MAX_PNG_IMAGES}); write .npy")
    rt = _load(args)
    x = _read_input(args, rt)
    for flag, index in (("--a", args.a), ("--b", args.b)):
        if not 0 <= index < len(x):
            raise ValueError(f"{flag} {index} is out of range: {args.input} holds {len(x)} images")
    write_images(out, rt.interpolate(x[args.a], x[args.b], steps=steps), columns=steps)


def _info(args) -> None:
    from .model_dir import read_model_dir

    model = read_model_dir(args.model)
    m = model.manifest
    print(f"model dir     {model.path.resolve()}")
    print(f"format        {m['format']}  (edgevae {m.get('edgevae_version', '?')}, opset {m.get('opset', '?')})")
    print(f"latent_dim    {model.latent_dim}   image_shape {list(model.image_shape)}")
    quality = m.get("quality", {})
    for variant, graphs in sorted(model.variants.items()):
        for graph in ("encoder", "decoder"):
            model.graph_bytes(variant, graph)  # raises on a sha256 mismatch
        size = sum((model.path / graphs[g]["file"]).stat().st_size for g in ("encoder", "decoder"))
        q = quality.get(variant, {})
        vs_fp32 = (f"  decoder PSNR {q['decoder_psnr_db']:.1f} dB, -ELBO {100 * q['neg_elbo_rel_change']:+.3f}% vs fp32"
                   if {"decoder_psnr_db", "neg_elbo_rel_change"} <= q.keys() else "")
        print(f"variant       {variant:<13} {size / 1e6:6.2f} MB  sha256 ok{vs_fp32}")
    for graph, choice in model.selection.items():
        print(f"selection     {graph}: " + ", ".join(f"batch>={k}: {v}" for k, v in sorted(choice.items())))
    parity = m.get("parity", {})
    diffs = [d for rows in parity.get("max_abs_diff", {}).values() for outs in rows.values() for d in outs.values()]
    if diffs:
        print(f"parity        max abs diff vs PyTorch {max(diffs):.2g} (tolerance {parity.get('tolerance', '?')})")
    final = m.get("training", {}).get("final", {})
    if final:
        metrics = ", ".join(f"{k} {v:.2f}" for k, v in sorted(final.items()) if isinstance(v, (int, float)))
        print(f"training      epoch {m['training'].get('epoch', '?')}: {metrics}")
