"""`edgevae quantize`: add int8 / int8-dynamic / fp16 variants to a model dir, with their quality vs fp32
measured and, with --select, the fastest variant per batch size inside the accuracy budget.

The model dir is checked first (every file's sha256 against the manifest); new files are written under
temporary names and renamed into place only when all were built and measured, the manifest last.
"""

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path

from edgevae.atomic import temp_name
from edgevae.runtime.contract import manifest as contract
from edgevae.runtime.contract.manifest import FP32, GRAPH_NAMES

from edgevae.runtime.contract.conventions import to_pixels
from edgevae.runtime.inference.graph_pair import GraphPair

from .mixed import SearchConfig
from .rewrite import DEPTH_TO_SPACE
from .variants import (DEFAULT_VARIANTS, VARIANTS, DynamicSettings, Fp16Settings, Int8Settings, NpuSettings, variant_file,
                       variant_spec)


@dataclass(frozen=True)
class QuantizeConfig:
    """What `edgevae quantize` builds and how."""

    variants: tuple[str, ...] = DEFAULT_VARIANTS
    int8: Int8Settings = field(default_factory=Int8Settings)
    int8_dynamic: DynamicSettings = field(default_factory=DynamicSettings)
    fp16: Fp16Settings = field(default_factory=Fp16Settings)
    fp32_npu: NpuSettings = field(default_factory=NpuSettings)
    fp16_npu: NpuSettings = field(default_factory=NpuSettings)
    int8_npu: Int8Settings = field(default_factory=lambda: Int8Settings(interleave=DEPTH_TO_SPACE))
    calibration_images: int = 1024  # training images (and their posterior z) fed to the calibrator
    test_images: int = 2000  # first N test images for the -ELBO / encoder comparison
    nll_images: int = 200  # first N test images for the IWAE NLL cost (0: not measured)
    nll_k: int = 100  # importance samples per image for it
    select: bool = False
    min_psnr_db: float = 35.0
    max_elbo_rel: float = 0.01
    threads: int | None = None  # for --select timings; None: the runtime's default
    seed: int = 0
    search: SearchConfig | None = None  # --search: also find the int8-mixed variant (export/mixed.py)
    static_batch: tuple[int, ...] = ()  # fixed-shape siblings of every variant at these batch sizes (export/static.py)

    def settings_for(self, variant: str):
        """The settings object of variant (of the type its VariantSpec names)."""
        field = variant_spec(variant).config_field
        if field is None:
            raise ValueError(f"variant {variant!r} is found by --search; its settings are not part of QuantizeConfig")
        return getattr(self, field)


def check_config(config: QuantizeConfig) -> None:
    for name in config.variants:
        if variant_spec(name).from_search:
            raise ValueError(f"variant {name!r} is found by --search, not built from --variants")
    for name in ("calibration_images", "test_images", "nll_k"):
        if getattr(config, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} {getattr(config, name)} must be >= 1")
    if config.nll_images < 0:
        raise ValueError(f"--nll-images {config.nll_images} must be >= 0")
    if config.threads is not None and config.threads < 1:
        raise ValueError(f"--threads {config.threads} must be >= 1")


def build_variants(model: contract.ModelDir, config: QuantizeConfig, *, data=None) -> tuple[dict, dict]:
    """Build every requested variant under temporary names: ({(variant, graph): temp path}, {variant: measured})."""
    from edgevae.train.data import held_out_images

    from . import calibrate, quality

    manifest = model.manifest
    data_dir = calibrate.data_for(manifest, data)  # the training run's dataset spec unless overridden
    binarize = calibrate.binarized(manifest)
    fp32 = {g: model.path / manifest.variants[FP32][g].file for g in GRAPH_NAMES}
    fp32_graphs = GraphPair.of_variant(model, FP32)
    calibration = {}
    conventions = model.conventions
    if config.search or any(VARIANTS[v].needs_calibration for v in config.variants):
        images = to_pixels(calibrate.training_images(data_dir, config.calibration_images, seed=config.seed, binarize=binarize), conventions)
        calibration = {"encoder": images, "decoder": calibrate.posterior_latents(fp32_graphs, images, seed=config.seed)}
    test = to_pixels(held_out_images(calibrate.images_of(data_dir), binarize=binarize, limit=config.test_images).numpy(),
                     conventions)  # the graphs' pixels
    reference = quality.graph_outputs(fp32_graphs, test, seed=config.seed)
    # IWAE NLL (runtime/inference/likelihood.py) is Bernoulli means with a Gaussian posterior: edgevae's own family's
    nll_images = test[:config.nll_images] if conventions == contract.CLASSIC else test[:0]
    reference_nll = quality.iwae_per_image(fp32_graphs, nll_images, k=config.nll_k, seed=config.seed) if len(nll_images) else None

    def measure(paths: dict, settings: dict) -> dict:
        graphs = GraphPair.of_files(model, paths)
        measured = quality.measure(reference, graphs, test_images=test, seed=config.seed) | {"settings": settings}
        if reference_nll is not None:
            measured["nll"] = quality.nll_cost(reference_nll, graphs, images=nll_images, k=config.nll_k, seed=config.seed)
        return measured

    built, report = {}, {}
    for variant in config.variants:
        spec = VARIANTS[variant]
        for graph in GRAPH_NAMES:
            built[(variant, graph)] = tmp = temp_name(model.path / variant_file(graph, variant))
            spec.build(fp32[graph], tmp, graph=graph, calibration=calibration.get(graph), settings=config.settings_for(variant))
        paths = {g: built[(variant, g)] for g in GRAPH_NAMES}
        report[variant] = measure(paths, settings_record(variant, config))
    if config.search:  # int8-mixed, when a candidate meets the search's budget; its report is written beside the manifest
        from .mixed import search

        found = search(model, calibration, test_images=test, reference=reference, config=config.search, seed=config.seed, threads=config.threads)
        built.update({("int8-mixed", g): path for g, path in found.paths.items()})
        if found.paths:
            report["int8-mixed"] = measure(found.paths, found.settings)
        print(f"search: {found.settings['search']['why']}")
    return built, report


def settings_record(variant: str, config: QuantizeConfig) -> dict:
    """What the manifest records of how variant was built (its VariantSpec's record of config's settings)."""
    return variant_spec(variant).record(config.settings_for(variant), config.calibration_images)


def quantize_model_dir(model_dir, config: QuantizeConfig = QuantizeConfig(), *, data=None) -> contract.Manifest:
    """Add config.variants to model_dir (see module docstring); returns the new manifest.

    Calibration and test images come from the dataset spec the model was trained on (train/data.py), shaped to
    its image_shape; data, a DataOverrides (e.g. DataOverrides(data_dir=FOLDER)), replaces fields of it, or a
    DataConfig replaces it whole."""
    from . import static
    from .check import check
    from .quality import within_budget
    from .selection import measure_latency, select

    check_config(config)
    model = contract.load(model_dir)
    model.verify()
    manifest = model.manifest
    built = {}
    try:
        built, report = build_variants(model, config, data=data)
        replaced = [v for v in report if v in manifest.variants]
        replaced += [v for v, shape in manifest.static.items() if shape.base in replaced]  # rebuilt with their base
        if replaced:  # unlist them first: a kill after the renames below must not leave old hashes naming new files
            manifest = dataclasses.replace(
                manifest, selection={}, latency_ms=None, golden=_without(manifest.golden, replaced), targets=None,
                variants={v: g for v, g in manifest.variants.items() if v not in replaced},
                static={v: shape for v, shape in manifest.static.items() if v not in replaced})
            contract.write(model.path, manifest)
        variants = {v: dict(graphs) for v, graphs in manifest.variants.items()}
        for (variant, graph), tmp in built.items():
            final = model.path / variant_file(graph, variant)
            os.chmod(tmp, 0o644)  # a model dir is for sharing, whatever the umask
            os.replace(tmp, final)
            variants.setdefault(variant, {})[graph] = contract.file_entry(final)
        fp32_bytes = sum(e.bytes for e in variants[FP32].values())
        quality = dict(manifest.quality)
        for variant, measured in report.items():
            size = sum(variants[variant][g].bytes for g in GRAPH_NAMES)
            quality[variant] = contract.Quality(**measured, bytes=size, size_vs_fp32=round(size / fp32_bytes, 4))
        manifest = dataclasses.replace(manifest, variants=variants, quality=quality)
        if config.select:
            names = [v for v in variants if v not in manifest.static]  # fixed shapes are swapped in by batch, not selected
            latency = measure_latency(model.path, manifest, variants=names, threads=config.threads)
            eligible = [v for v in names if v in quality and within_budget(quality[v], min_psnr_db=config.min_psnr_db, max_elbo_rel=config.max_elbo_rel)]
            if config.search:  # and the user's budget, as the search applied it
                from .mixed import meets_quality

                eligible = [v for v in eligible if meets_quality(quality[v], config.search)]
            manifest = dataclasses.replace(
                manifest, selection=select(latency, eligible),
                latency_ms=contract.Latency(threads=config.threads, eligible=(FP32, *eligible), by_variant=latency))
        before = [(shape.base, shape.batch) for shape in model.manifest.static.values()]  # rebuilt with a rebuilt base
        siblings = static.plan(manifest, config.static_batch, keep=before)
        manifest = static.add_static(model.path, manifest, siblings=siblings)
        manifest = _with_goldens(model, manifest, [*report, *(static.static_name(v, b) for v, b in siblings)])
        manifest = dataclasses.replace(manifest, targets=check(contract.ModelDir(model.path, manifest)))
        contract.write(model.path, manifest)
    finally:
        for tmp in built.values():
            Path(tmp).unlink(missing_ok=True)
    return manifest


def _without(golden: contract.Golden | None, variants: list) -> contract.Golden | None:
    """golden with the variants' expected outputs unlisted (their files are about to be replaced)."""
    if golden is None:
        return None
    drop = lambda table: {v: x for v, x in table.items() if v not in variants}  # noqa: E731
    return dataclasses.replace(golden, outputs=drop(golden.outputs), tolerance=drop(golden.tolerance),
                               measured=drop(golden.measured))


def _with_goldens(model: contract.ModelDir, manifest: contract.Manifest, variants: list) -> contract.Manifest:
    """manifest with goldens for the new variants (runtime/device/golden.py), on the dir's golden inputs (a dir
    exported before goldens existed gets seeded ones, and fp32 goldens too); their files written now."""
    from edgevae.runtime.device import golden as goldens

    staged = contract.ModelDir(model.path, manifest)
    previous = model.manifest.golden
    inputs = goldens.read_inputs(model) if previous is not None else goldens.default_inputs(staged)
    if previous is None or FP32 not in previous.outputs:
        variants = [FP32, *variants]
    golden, files = goldens.build(staged, variants, inputs=inputs, previous=previous, source="edgevae quantize")
    goldens.write_files(model.path, files)
    return dataclasses.replace(manifest, golden=golden)


def format_table(manifest: contract.Manifest) -> str:
    """The quality (and, when measured, latency) of every variant as a text table."""
    lines = [f"{'variant':<13}{'MB':>7}{'size':>7}{'dec max|d|':>11}{'PSNR dB':>9}{'mu max|d|':>10}{'lv max|d|':>10}{'-ELBO':>10}{'vs fp32':>9}"
             f"{'NLL cost':>18}"]
    fp32_bytes = sum(e.bytes for e in manifest.variants[FP32].values())
    fp32_elbo = next((q.test_neg_elbo_fp32 for q in manifest.quality.values()), None)
    lines.append(f"{FP32:<13}{fp32_bytes / 1e6:>7.2f}{1:>7.2f}{'-':>11}{'-':>9}{'-':>10}{'-':>10}{_cell(fp32_elbo, '.2f'):>10}{'-':>9}")
    for v, q in manifest.quality.items():
        psnr = float("inf") if q.decoder_psnr_db is None else q.decoder_psnr_db
        lines.append(f"{v:<13}{q.bytes / 1e6:>7.2f}{q.size_vs_fp32:>7.2f}{q.decoder_max_abs_diff:>11.4f}{psnr:>9.2f}"
                     f"{q.encoder_mu_max_abs_diff:>10.4f}{_cell(q.encoder_logvar_max_abs_diff, '.4f'):>10}"
                     f"{_cell(q.test_neg_elbo, '.2f'):>10}"
                     f"{_cell(None if q.neg_elbo_rel_change is None else q.neg_elbo_rel_change * 100, '.3f', '%'):>9}"
                     f"{_nll_cell(q.nll):>18}")
    latency = manifest.latency_ms
    if latency:
        sizes = list(manifest.selection["decoder"])
        lines.append(f"\nlatency ms (encoder + decoder), threads={latency.threads}: " + "  ".join(f"batch {b}" for b in sizes))
        for v, graphs in latency.by_variant.items():
            cells = "  ".join(f"{graphs['encoder'][b]:.3f}+{graphs['decoder'][b]:.3f}" for b in sizes)
            lines.append(f"{v:<13}{cells}{'' if v in latency.eligible else '   (outside the accuracy budget)'}")
        for graph, choice in manifest.selection.items():
            lines.append(f"selection, {graph}: " + ", ".join(f"batch {b} -> {v}" for b, v in choice.items()))
    return "\n".join(lines)


def _cell(value: float | None, spec: str, unit: str = "") -> str:
    """A table cell; "-" where the figure does not exist (no likelihood declared: no nats; no logvar)."""
    return "-" if value is None else f"{value:{spec}}{unit}"


def _nll_cell(nll: contract.NllCost | None) -> str:
    return "-" if nll is None else f"{nll.cost:+.3f} +- {nll.cost_stderr:.3f}"


def main(args) -> None:
    """Entry point of `edgevae quantize`."""
    if not args.search and (args.budget_psnr is not None or args.budget_nats is not None):
        raise ValueError("--budget-psnr and --budget-nats apply to --search; add --search")
    from edgevae.train.data import DataOverrides

    from .static import parse_batches

    static_batch = parse_batches(args.static_batch) if args.static_batch is not None else ()
    config = QuantizeConfig(
        variants=tuple(v.strip() for v in args.variants.split(",") if v.strip()),
        int8=Int8Settings(calibration=args.calibration, per_channel=args.per_channel),
        int8_dynamic=DynamicSettings(per_channel=args.per_channel),
        calibration_images=args.calibration_images, test_images=args.test_images, nll_images=args.nll_images,
        nll_k=args.nll_k, select=args.select, threads=args.threads, static_batch=static_batch,
        search=SearchConfig(budget_psnr=args.budget_psnr, budget_nats=args.budget_nats, min_speedup=args.min_speedup,
                            budget_s=args.search_budget_s) if args.search else None,
    )
    manifest = quantize_model_dir(args.model_dir, config, data=DataOverrides(data=args.data, data_dir=args.data_dir))
    print(f"test -ELBO over the first {config.test_images} test images (one seeded posterior draw each), nats/image"
          + (f"; NLL cost: IWAE (k={config.nll_k}) minus fp32's over the first {config.nll_images}, paired, +- standard error"
             if config.nll_images else ""))
    print(format_table(manifest))
