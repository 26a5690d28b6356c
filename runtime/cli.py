"""Subcommands `sample`, `reconstruct`, `interpolate` and `info` (argument parsing only: numpy and
onnxruntime are imported when one of them runs)."""

from pathlib import Path


def _model_args(p, threads: bool = True) -> None:
    p.add_argument("--model", type=Path, help="model dir made by `edgevae export` (default: the model shipped in the package)")
    p.add_argument("--variant", default="auto",
                   help="fp32, int8, int8-dynamic, fp16, or auto: the manifest's choice per graph and batch size (default, "
                        "as in VAERuntime.load)")
    p.add_argument("--trust", type=Path, metavar="PUB.pem",
                   help="refuse the dir unless it is signed (edgevae sign) by this public key's private key")
    if threads:
        p.add_argument("--threads", type=_threads_arg, default="auto",
                       help="intra-op threads per session, or auto (default): this device's profile from `edgevae tune`, "
                            "else the manifest's, else onnxruntime's default")
        p.add_argument("--timeout", type=float, metavar="S",
                       help="stop any one onnxruntime call after S seconds (default: 100x the fastest call so far, at "
                            "least 10 s; 300 s for the first)")
        p.add_argument("--spin", action="store_true",
                       help="let idle onnxruntime threads busy-wait for work (lower latency on an idle machine, a core "
                            "burnt; default off)")


def _threads_arg(text: str):
    """--threads: "auto" or an integer (its range is checked against the usable cores when the command runs)."""
    if text == "auto":
        return text
    from argparse import ArgumentTypeError

    try:
        return int(text)
    except ValueError:
        raise ArgumentTypeError(f"must be an integer or auto, got {text!r}") from None


def register(sub) -> None:
    p = sub.add_parser("sample", help="decode N draws of z ~ N(0, I) to a PNG grid or a .npy array")
    _model_args(p)
    p.add_argument("--n", type=int, required=True, help="number of samples")
    p.add_argument("--seed", type=int, default=0, help="noise seed (default 0): same seed, same samples")
    p.add_argument("--out", type=Path, required=True, help="FILE.png (grid) or FILE.npy (float32 [N,C,H,W] in [0, 1])")
    p.set_defaults(run=_sample, extra=None)

    p = sub.add_parser("decode", help="decode given latents (a .npy array in the model's latent convention) to a "
                                      "PNG grid or a .npy array, streamed")
    _model_args(p)
    p.add_argument("--latents", type=Path, required=True, help="float .npy of shape [N, *latent] (see `edgevae info`)")
    p.add_argument("--out", type=Path, required=True, help="FILE.png (grid) or FILE.npy (float32 [N,C,H,W] in [0, 1])")
    p.add_argument("--tile", type=int, metavar="T", help="fully convolutional models: decode each latent in T x T "
                   "tiles, memory bounded by the tile (VAERuntime.decode_tiled)")
    p.add_argument("--overlap", type=int, metavar="O", help="--tile: latent pixels tiles share (default: twice the "
                   "declared receptive field, else T/4)")
    p.set_defaults(run=_decode, extra=None)

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
    _model_args(p, threads=False)
    p.set_defaults(run=_info, extra=None)


def _load(args):
    from .inference.checks import check_count, check_threads
    from .inference.run_guard import check_timeout
    from .inference.vae import VAERuntime

    threads = args.threads if args.threads == "auto" else check_threads(args.threads, "--threads")  # named as typed
    if getattr(args, "seed", None) is not None:
        check_count("--seed", args.seed, minimum=0)  # numpy's seeds are non-negative
    timeout_s = check_timeout(args.timeout, "--timeout")
    return VAERuntime.load(args.model, variant=args.variant, threads=threads, timeout_s=timeout_s, spinning=args.spin,
                           trust=args.trust)


def _sample(args) -> None:
    from .inference.checks import check_count
    from .image_io.image_files import MAX_PNG_IMAGES, NpyWriter, check_output_path, write_images

    out = check_output_path(args.out)
    n = check_count("--n", args.n)
    if out.suffix.lower() == ".png" and n > MAX_PNG_IMAGES:
        raise ValueError(f"--n {n} is too many for a PNG grid (at most {MAX_PNG_IMAGES}); write .npy")
    rt = _load(args)
    if out.suffix.lower() == ".png":
        write_images(out, rt.sample(n, args.seed))
        return
    _check_disk(out, n, rt.image_shape, "--n")
    with NpyWriter(out, (n, *rt.image_shape)) as npy:
        for chunk in rt.iter_samples(n, args.seed):
            npy.write(chunk)


def _decode(args) -> None:
    import numpy as np

    from .image_io.image_files import MAX_PNG_IMAGES, NpyWriter, check_output_path, write_images
    from .image_io.latent_files import read_latents

    out = check_output_path(args.out)
    z = read_latents(args.latents)  # memory-mapped: read chunk by chunk as it is decoded
    if out.suffix.lower() == ".png" and len(z) > MAX_PNG_IMAGES:
        raise ValueError(f"{args.latents} holds {len(z)} latents, too many for a PNG grid (at most {MAX_PNG_IMAGES}); "
                         "write .npy")
    if args.overlap is not None and args.tile is None:
        raise ValueError("--overlap applies to --tile")
    rt = _load(args)
    chunks = rt.iter_decode(z) if args.tile is None else \
        (rt.decode_tiled(np.asarray(z[i:i + 1]), tile=args.tile, overlap=args.overlap) for i in range(len(z)))  # one at a time
    first = next(chunks)  # the latent's shape checked and the image size known before the output is opened
    if out.suffix.lower() == ".png":
        write_images(out, np.concatenate([first, *chunks]))
        return
    shape = (len(z), *first.shape[1:])
    _check_disk(out, len(z), shape[1:], "--latents")
    with NpyWriter(out, shape) as npy:
        npy.write(first)
        for chunk in chunks:
            npy.write(chunk)


def _check_disk(out, n: int, image_shape: tuple, flag: str) -> None:
    """Refuse now, rather than after hours of decoding, a .npy of n images that cannot fit on out's disk."""
    import shutil

    import numpy as np

    need = 128 + n * 4 * int(np.prod(image_shape))  # .npy header + float32 pixels
    free = shutil.disk_usage(out.parent).free
    if need > free:
        raise ValueError(f"{flag} {n} needs {need / 1e9:.3g} GB for {out}; {out.parent} has {free / 1e9:.3g} GB free")


def _read_input(args, rt, count: int):
    """The first `count` images of --input: only those are read (a .gz inflated only that far)."""
    from .image_io.image_files import read_images

    return read_images(args.input, size=rt.image_shape[1:], count=count, channels=rt.image_shape[0])


def _reconstruct(args) -> None:
    import numpy as np

    from .inference.checks import check_count
    from .image_io.image_files import MAX_PNG_IMAGES, check_output_path, write_images

    out = check_output_path(args.out)
    limit = check_count("--limit", args.limit)
    rt = _load(args)
    x = _read_input(args, rt, count=limit)
    if out.suffix.lower() == ".png" and 2 * len(x) > MAX_PNG_IMAGES:  # refused before any reconstruction runs
        raise ValueError(f"{len(x)} images and their reconstructions are too many for a PNG grid "
                         f"(at most {MAX_PNG_IMAGES // 2} images); pass --limit {MAX_PNG_IMAGES // 2} or write .npy")
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
    from .inference.checks import check_count
    from .image_io.image_files import MAX_PNG_IMAGES, NpyWriter, check_output_path, write_images

    out = check_output_path(args.out)
    steps = check_count("--steps", args.steps, minimum=2)
    if out.suffix.lower() == ".png" and steps > MAX_PNG_IMAGES:
        raise ValueError(f"--steps {steps} is too many for a PNG row (at most {MAX_PNG_IMAGES}); write .npy")
    for flag, index in (("--a", args.a), ("--b", args.b)):
        check_count(flag, index, minimum=0)
    rt = _load(args)
    x = _read_input(args, rt, count=max(args.a, args.b) + 1)
    for flag, index in (("--a", args.a), ("--b", args.b)):
        if index >= len(x):
            raise ValueError(f"{flag} {index} is out of range: {args.input} holds {len(x)} images")
    if out.suffix.lower() == ".png":
        write_images(out, rt.interpolate(x[args.a], x[args.b], steps=steps), columns=steps)
        return
    _check_disk(out, steps, rt.image_shape, "--steps")
    with NpyWriter(out, (steps, *rt.image_shape)) as npy:  # streamed: any --steps in bounded memory
        for chunk in rt.iter_interpolate(x[args.a], x[args.b], steps=steps):
            npy.write(chunk)


def _info(args) -> None:
    from .contract.manifest import FP32, GRAPH_NAMES, load
    from .contract.safe_files import escape

    model = load(args.model)
    if args.trust is not None:
        from .contract.signing import check_signature

        check_signature(model, args.trust)
    model.verify()  # every file hashed before a line is printed: no half report
    variant = model.check_variant(args.variant)
    m = model.manifest
    lines = [f"model dir     {escape(model.path.resolve())}",
             f"format        {escape(m.format)}  (edgevae {escape(m.edgevae_version)}, opset {m.opset})",
             f"latent_dim    {m.latent_dim}   image_shape {list(m.image_shape)}"
             + (f"   latent_shape {list(m.latent_shape)}" if m.latent_shape else "")]
    if m.conventions is not None:
        c = m.conventions
        lines.append(f"conventions   pixels {list(c.pixel_range)}, decoder {escape(c.decoder_head)}, posterior "
                     f"{escape(c.posterior)}, prior {escape(c.prior)}, latent scale {c.latent_scale:g} shift "
                     f"{c.latent_shift:g}" + (f", fully convolutional /{c.downsampling}" if c.downsampling else "")
                     + (f", receptive field {c.receptive_field}" if c.receptive_field else ""))
    for name, graphs in sorted(m.variants.items()):
        size = sum(graphs[g].bytes for g in GRAPH_NAMES)
        q = m.quality.get(name)
        vs_fp32 = ""
        if q is not None:
            psnr = "identical" if q.decoder_psnr_db is None else f"{q.decoder_psnr_db:.1f} dB"
            vs_fp32 = f"  decoder PSNR {psnr}" + (f", -ELBO {100 * q.neg_elbo_rel_change:+.3f}% vs fp32"
                                                  if q.neg_elbo_rel_change is not None else "")
            if q.nll is not None:
                vs_fp32 += f", IWAE NLL {q.nll.cost:+.3f} +- {q.nll.cost_stderr:.3f} nats"
        fixed = m.static.get(name)
        vs_fp32 += f"  fixed batch {fixed.batch} of {escape(fixed.base)}" if fixed else ""
        lines.append(f"variant       {escape(name):<13} {size / 1e6:6.2f} MB  sha256 ok{vs_fp32}")
    from .device.profile import plan as device_plan

    chosen = device_plan(model, variant, threads="auto")  # --threads auto, as sample/reconstruct/interpolate default to
    for graph in GRAPH_NAMES:
        picks = [chosen.choose(model, graph, batch=b) for b in (1, 8, 64, 256)]
        runs = ", ".join(f"batch {b}: {escape(c.variant)} x{c.threads or 'default'}" for b, c in zip((1, 8, 64, 256), picks))
        why = ("quantize --select's measured choice" if variant == "auto" and m.selection.get(graph)
               else f"no selection in the manifest: {FP32}" if variant == "auto" else "asked for")
        why = why if chosen.profile is None else "measured on this device"
        lines.append(f"runs          {graph} with --variant {escape(variant)}: {runs} ({why})")
    lines.append(f"in force      {chosen.why}")
    if m.static:
        lines.append("fixed shapes  a batch of exactly a fixed-shape variant's size runs it in place of its base "
                     "(never padded): " + ", ".join(f"{escape(s.base)} at {s.batch}" for s in m.static.values()))
    from .contract.signing import SIGNATURE
    from .device.targets import summary

    lines += [f"{'targets' if i == 0 else '':<14}{line}" for i, line in enumerate(summary(m))]
    signed = (model.path / SIGNATURE).is_file()
    lines.append(f"signature     {SIGNATURE + ' present (edgevae verify --trust PUB.pem checks it)' if signed else 'none'}"
                 + (" and verified with --trust" if args.trust is not None else ""))
    if m.golden is not None:
        lines.append(f"goldens       {', '.join(escape(v) for v in m.golden.outputs)} (edgevae verify)")
    if m.parity is not None:
        diffs = [d for rows in m.parity.max_abs_diff.values() for outs in rows.values() for d in outs.values()]
        if diffs:
            lines.append(f"parity        max abs diff vs PyTorch {max(diffs):.2g} (tolerance {m.parity.tolerance:g})")
    if m.training is not None and m.training.final:
        metrics = ", ".join(f"{escape(k)} {v:.2f}" for k, v in sorted(m.training.final.items()))
        lines.append(f"training      epoch {m.training.epoch}: {metrics}")
    from .device.platform_facts import facts, lines as platform_lines

    lines += platform_lines(facts())  # what this device is, so a pasted report says what it ran on
    print("\n".join(lines))
