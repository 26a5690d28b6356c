"""`edgevae train`: fit the VAE on the negative ELBO, checkpointing every epoch, resumable exactly."""

import json
import math
import time
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import torch
from torch import nn

from . import distributed
from .checkpoint import atomic_write, load_model, save_checkpoint, write_json
from .data import DataConfig, held_out_images, load_images
from .loss import neg_elbo
from .model import VAE, VAEConfig
from .plot import write_neg_elbo_plot
from .precision import PRECISIONS, StepSetting, autocast, candidates, choose

LR_FLOOR = 0.01  # the cosine schedule ends at lr * LR_FLOOR and stays there, so training can go on past it


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 10
    batch_size: int = 128
    lr: float = 1e-3
    beta: float = 1.0  # weight of the KL term in the optimised loss (1 = the true ELBO)
    kl_warmup_epochs: float = 0.0  # beta ramps linearly from 0 over this many epochs
    lr_decay_epochs: float = 0.0  # cosine decay of lr over this many epochs, to lr * LR_FLOOR (0: constant lr)
    binarize: bool = False  # dynamic binarization in training, fixed binarized test set
    limit_train: int | None = None
    seed: int = 0
    device: str = "cpu"
    data_dir: str | None = None
    data: str = "fashion-mnist"  # dataset spec (train/data.py); the network is built for its image shape
    image_size: str | None = None  # "HxW": crop + resize every image to it
    channels: int | None = None  # 1 or 3: convert the images to gray or RGB
    precision: str = "auto"  # fp32, bf16 (autocast), or auto: whichever step measures faster here (train/precision.py)

    def __post_init__(self):
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        rates = (self.lr, self.beta, self.kl_warmup_epochs, self.lr_decay_epochs)
        if not all(map(math.isfinite, rates)) or self.lr <= 0 or min(rates) < 0:  # nan passes every comparison
            raise ValueError(f"lr must be > 0 and beta, kl_warmup_epochs, lr_decay_epochs >= 0, all finite "
                             f"(got {self.lr}, {self.beta}, {self.kl_warmup_epochs}, {self.lr_decay_epochs})")
        if self.limit_train is not None and self.limit_train < 1:
            raise ValueError(f"limit_train must be >= 1, got {self.limit_train}")
        if self.device not in ("cpu", "cuda"):
            raise ValueError(f"device must be cpu or cuda, got {self.device!r}")
        if self.device == "cuda" and not torch.cuda.is_available():
            raise ValueError("--device cuda asked for, but torch sees no CUDA device")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")


def beta_at(cfg: TrainConfig, progress: float) -> float:
    """KL weight after `progress` epochs (fractional), with linear warm-up."""
    if cfg.kl_warmup_epochs == 0:
        return cfg.beta
    return cfg.beta * min(1.0, progress / cfg.kl_warmup_epochs)


def lr_at(cfg: TrainConfig, progress: float) -> float:
    """Learning rate after `progress` epochs (fractional): cosine from lr to lr * LR_FLOOR over
    lr_decay_epochs (Loshchilov & Hutter 2017, one cycle), then flat. A function of progress alone, like
    beta_at, so a resumed run and every DDP rank follow the schedule with no scheduler state to save."""
    if cfg.lr_decay_epochs == 0:
        return cfg.lr
    done = min(1.0, progress / cfg.lr_decay_epochs)
    return cfg.lr * (LR_FLOOR + (1 - LR_FLOOR) * 0.5 * (1 + math.cos(math.pi * done)))


@torch.no_grad()
def evaluate(model, images, *, batch_size=1000, seed=0, device="cpu") -> dict:
    """Test -ELBO / BCE / KL in nats per image, one seeded posterior draw per image."""
    model.eval()
    torch.manual_seed(seed)
    totals = {"test_neg_elbo": 0.0, "test_bce": 0.0, "test_kl": 0.0}
    for i in range(0, len(images), batch_size):
        xb = images[i : i + batch_size].to(device)
        t = neg_elbo(model, xb)
        for key, value in zip(totals, (t.neg_elbo, t.bce, t.kl)):
            totals[key] += value.item() * len(xb)
    return {k: v / len(images) for k, v in totals.items()}


class Objective(nn.Module):
    """The training loss as one module, so that DistributedDataParallel sees the whole forward pass."""

    def __init__(self, model: VAE):
        super().__init__()
        self.model = model

    def forward(self, x, eps, *, beta: float, scale: float = 1.0):
        """(loss * scale to backpropagate, the batch's -ELBO); scale: see train/distributed.py."""
        terms = neg_elbo(self.model, x, beta=beta, eps=eps)
        return terms.loss * scale, terms.neg_elbo.detach()


def global_batches(cfg: TrainConfig, images, *, epoch: int, latent_dim: int):
    """(step, global batch, its posterior noise eps) for each step of an epoch, all drawn from a generator seeded
    by (seed, epoch) alone: a run resumed from epoch e's checkpoint replays epoch e+1 bit for bit, and every
    rank draws the same global batches (train/distributed.py)."""
    gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch)
    order = torch.randperm(len(images), generator=gen)
    for step, i in enumerate(range(0, len(images), cfg.batch_size)):
        xb = images[order[i : i + cfg.batch_size]]  # the global batch (slicing is cheap: docs/results.md)
        if cfg.binarize:
            xb = torch.bernoulli(xb, generator=gen)
        yield step, xb, torch.randn(len(xb), latent_dim, generator=gen)


def local_loss(objective, xb, *, eps, beta: float, world: distributed.World, device: str,
               setting: StepSetting = StepSetting()):
    """(loss to backpropagate, the mean -ELBO of this rank's images, their count) for this rank's slice of the global
    batch xb: the local mean scaled by local_n * N / global_n, so DDP's average of the ranks' gradients is the
    gradient of the global batch mean even when the batch does not split evenly."""
    part = distributed.local_slice(len(xb), world)
    scale = (part.stop - part.start) * world.size / len(xb)  # 1.0 in a single process
    x_local = xb[part].to(device, memory_format=setting.memory_format)
    with autocast(setting.precision, device):
        loss, value = objective(x_local, eps[part].to(device), beta=beta, scale=scale)
    return loss, value, len(x_local)


def train_epoch(objective, opt, *, cfg: TrainConfig, images, epoch: int, latent_dim: int,
                setting: StepSetting = StepSetting(), world: distributed.World = distributed.World()) -> float:
    """One pass over images; returns the mean training -ELBO (over all ranks). N ranks, each taking its
    slice of every global batch (global_batches, local_loss), train the model one process would."""
    from tqdm import tqdm

    objective.train()
    torch.manual_seed((cfg.seed * 1_000_003 + epoch) * 1_009 + world.rank)  # per rank: other draws differ
    n_steps = -(-len(images) // cfg.batch_size)
    total = 0.0
    batches = global_batches(cfg, images, epoch=epoch, latent_dim=latent_dim)
    for step, xb, eps in tqdm(batches, total=n_steps, desc=f"epoch {epoch}/{cfg.epochs}", leave=False, mininterval=1.0,
                              disable=not world.is_main):
        if len(xb) < world.size:  # a last global batch too small to give every rank an image: skipped by all
            continue
        progress = epoch - 1 + step / n_steps
        for group in opt.param_groups:
            group["lr"] = lr_at(cfg, progress)
        loss, value, n = local_loss(objective, xb, eps=eps, beta=beta_at(cfg, progress), world=world, device=cfg.device, setting=setting)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        total += value.item() * n
    return distributed.sum_across(total, world, device=cfg.device) / len(images)


def save_grids(model, test_images, *, out: Path, seed: int, device: str) -> None:
    """reconstructions.png (top: inputs, bottom: posterior means decoded) and samples.png (prior draws)."""
    from torchvision.utils import save_image

    model.eval()
    with torch.no_grad():
        x = test_images[:32].to(device)
        recon = model.decoder(model.encoder(x)[0])
        z = torch.randn(64, model.config.latent_dim, generator=torch.Generator().manual_seed(seed)).to(device)
        samples = model.decoder(z)
    for name, grid, nrow in (("reconstructions.png", torch.cat([x, recon]), 16), ("samples.png", samples, 8)):
        atomic_write(out / name, lambda f: save_image(grid.cpu(), f, nrow=nrow, format="png"))


def train(cfg: TrainConfig, out, *, model_config: VAEConfig = VAEConfig(), resume: bool = False) -> dict:
    """Train into the folder `out`; returns the metrics dict also written to out/metrics.json.

    Under torchrun, one of N data-parallel ranks (train/distributed.py); ranks other than 0 return {}.
    """
    world = distributed.world_from_env()
    if cfg.batch_size < world.size:
        raise ValueError(f"--batch-size {cfg.batch_size} is the global batch; it must be >= the {world.size} processes")
    distributed.init(world, cfg.device)
    try:
        return _train(cfg, out, model_config, resume, world)
    finally:
        distributed.shutdown(world)


def _train(cfg: TrainConfig, out, model_config: VAEConfig, resume: bool, world: distributed.World) -> dict:
    out = Path(out)
    ckpt_path, metrics_path = out / "checkpoint.pt", out / "metrics.json"
    data = load_images(DataConfig.from_train_config(asdict(cfg)))
    train_x, test_x = data.train, held_out_images(data, binarize=cfg.binarize)
    model_config = replace(model_config, image_shape=data.image_shape)  # the network is built for the data's shape
    if cfg.limit_train:
        train_x = train_x[: cfg.limit_train]

    out.mkdir(parents=True, exist_ok=True)
    start_epoch, history, probe = 1, [], None
    if resume and ckpt_path.exists():
        model, state = load_model(ckpt_path)
        saved = TrainConfig(**state["train_config"])
        if asdict(saved) | {"epochs": cfg.epochs} != asdict(cfg) | {"epochs": cfg.epochs}:
            raise ValueError(f"--resume with other settings than {ckpt_path} was trained with: {state['train_config']}")
        model_config, start_epoch = model.config, state["epoch"] + 1
        history = [m for m in state["history"] if m["epoch"] < start_epoch]
        # what the run chose (auto included) stays its choice, so the resumed epochs replay bit for bit
        setting = StepSetting(state.get("precision", "fp32"), state.get("channels_last", True))
    else:
        torch.manual_seed(cfg.seed)
        model = VAE(model_config)
        setting, probe = choose_setting(cfg, model, images=train_x, world=world)
    model.to(cfg.device, memory_format=setting.memory_format)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    if start_epoch > 1:
        opt.load_state_dict(state["optimizer"])
    objective = distributed.wrap(Objective(model), world, device=cfg.device)
    if world.is_main:
        write_json(out / "config.json", {"model": asdict(model_config), "train": asdict(cfg)})
        if probe is not None:
            write_json(out / "probe.json", probe)
        how = f"{probe['why']}{_probe_summary(probe)}" if probe else "as the checkpoint chose"
        print(f"step {setting.name} ({cfg.precision}: {how}), {world.size} process(es), "
              f"{torch.get_num_threads()} threads each", flush=True)

    for epoch in range(start_epoch, cfg.epochs + 1):
        t0 = time.perf_counter()
        train_loss = train_epoch(objective, opt, cfg=cfg, images=train_x, epoch=epoch, latent_dim=model_config.latent_dim, setting=setting, world=world)
        seconds = time.perf_counter() - t0
        if not world.is_main:  # rank 0 alone evaluates and writes; the others go on to the next epoch
            continue
        row = {"epoch": epoch, "train_neg_elbo": train_loss, "epoch_seconds": seconds,
               "precision": setting.precision, "channels_last": setting.channels_last, "processes": world.size}
        with distributed.all_cores(world, cfg.device):
            row |= evaluate(model, test_x, seed=cfg.seed, device=cfg.device)
        history.append(row)
        print(
            f"epoch {epoch}: train -ELBO {train_loss:.2f}  test -ELBO {row['test_neg_elbo']:.2f} "
            f"(BCE {row['test_bce']:.2f} + KL {row['test_kl']:.2f}) nats  {seconds:.1f} s",
            flush=True,
        )
        save_checkpoint(ckpt_path, {
            "epoch": epoch, "model_config": asdict(model_config), "train_config": asdict(cfg),
            "model": model.state_dict(), "optimizer": opt.state_dict(), "history": history,
            "precision": setting.precision, "channels_last": setting.channels_last,
        })
        write_json(metrics_path, merged_metrics(metrics_path, history))
        with distributed.all_cores(world, cfg.device):
            save_grids(model, test_x, out=out, seed=cfg.seed, device=cfg.device)
        write_neg_elbo_plot(history, out)
    return json.loads(metrics_path.read_text()) if world.is_main else {}


def choose_setting(cfg: TrainConfig, model: VAE, *, images, world: distributed.World) -> tuple[StepSetting, dict]:
    """The step's precision and layout (train/precision.py): rank 0 measures, every rank follows it."""
    settings = candidates(cfg.precision, cfg.device)
    if world.is_main:
        shape = {"image_shape": list(model.config.image_shape), "latent_dim": model.config.latent_dim,
                 "batch_size": min(cfg.batch_size, len(images))}
        chosen = choose(settings, lambda: _probe_steps(settings, model, cfg, images), device=cfg.device, shape=shape)
    return distributed.broadcast(chosen if world.is_main else None, world)


def _probe_steps(settings: list, model: VAE, cfg: TrainConfig, images) -> dict:
    """{setting: one real training step}: a copy of model with its own Adam on the first global batch, so that
    probing draws nothing from the run's generators and leaves its weights untouched."""
    import copy

    eps = torch.randn(min(cfg.batch_size, len(images)), model.config.latent_dim, generator=torch.Generator().manual_seed(0))

    def make(setting: StepSetting):
        objective = Objective(copy.deepcopy(model).to(cfg.device, memory_format=setting.memory_format)).train()
        opt = torch.optim.Adam(objective.parameters(), lr=cfg.lr)
        xb = images[: len(eps)]

        def step():
            loss, _, _ = local_loss(objective, xb, eps=eps, beta=1.0, world=distributed.World(), device=cfg.device, setting=setting)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

        return step

    return {setting: make(setting) for setting in settings}


def _probe_summary(probe: dict) -> str:
    if "median_ms" not in probe:
        return ""
    return ": " + ", ".join(f"{name} {ms:.0f} ms" for name, ms in probe["median_ms"].items()) + " per step"


def merged_metrics(metrics_path: Path, history: list) -> dict:
    """metrics.json content: per-epoch rows, the last one as "final", keeping what eval added."""
    old = json.loads(metrics_path.read_text()) if metrics_path.exists() else {}
    final = {k: v for k, v in history[-1].items() if k.startswith("test_")}
    return old | {"epochs": history, "final": final | {"epoch": history[-1]["epoch"]}}


def config_from_args(args) -> TrainConfig:
    names = {f.name for f in fields(TrainConfig)}
    return TrainConfig(**{k: v for k, v in vars(args).items() if k in names and v is not None})


def check_args(args) -> None:
    """ValueError naming the first bad setting of `edgevae train`'s arguments (what main would refuse)."""
    config_from_args(args)
    VAEConfig(latent_dim=args.latent_dim)


def main(args) -> None:
    train(config_from_args(args), args.out, model_config=VAEConfig(latent_dim=args.latent_dim), resume=args.resume)
