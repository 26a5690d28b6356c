"""Training throughput of the seed VAE on this CPU: precision, layout, batch size, threads, optimizer.

    python -m edgevae.benchmarks.train_speed [--steps 20] [--variants fp32,bf16,...] [--compile]

Each variant trains its own model on the same random images; steps are interleaved, one per variant in a
fresh order each round (edgevae.timing), so that load from other processes hits all variants alike, and each median step time is turned into
seconds per 60k-image epoch. Also measured: what one step's data handling costs (slice, layout,
binarize) and test-set evaluation under no_grad vs inference_mode.

The roofline: a fp32 step's FLOPs (counted by torch.utils.flop_counter over forward and backward) against
a 2048 x 2048 sgemm timed between the same steps with the same threads, which gives each variant's
GFLOP/s as a fraction of sgemm's, and the epoch time this CPU could reach if every convolution ran at
sgemm speed: a floor no kernel or layout change goes below in fp32.
"""

import argparse
import os
import statistics
import time
from dataclasses import dataclass

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as `edgevae train` sets it (train/cli.py); before torch loads OpenMP
import torch  # noqa: E402

from edgevae.benchmarks.machine import sgemm_call
from edgevae.timing import Schedule, interleave
from edgevae.train.loss import neg_elbo
from edgevae.train.model import VAE
from edgevae.cpu import cpu_flags
from edgevae.train.precision import autocast, native_bf16

EPOCH_IMAGES = 60_000
CL, NCHW = torch.channels_last, torch.contiguous_format
ONCE_A_ROUND = dict(budget_s=0.0, segment_s=0.0, warmup_calls=0)  # Schedule: one timed call per candidate and round


@dataclass(frozen=True)
class Variant:
    batch: int = 128
    memory_format: torch.memory_format = CL
    precision: str = "fp32"
    threads: int | None = None  # None: torch's default
    adam: str = "default"  # "default" (foreach on CPU), "fused", "for-loop"
    compiled: bool = False


VARIANTS = {
    "fp32": Variant(),  # what `edgevae train` does: channels_last, batch 128, fp32
    "bf16": Variant(precision="bf16"),
    "nchw": Variant(memory_format=NCHW),
    "b64": Variant(batch=64),
    "b256": Variant(batch=256),
    "b512": Variant(batch=512),
    "1thread": Variant(threads=1),
    "adam-fused": Variant(adam="fused"),
    "adam-for-loop": Variant(adam="for-loop"),
    "compile": Variant(compiled=True),
}
DEFAULT = "fp32,bf16,nchw,b64,b256,b512,1thread,adam-fused"


def make_step(v: Variant, device: str = "cpu"):
    torch.manual_seed(0)
    model = VAE().to(device, memory_format=v.memory_format)
    adam = {"default": {}, "fused": {"fused": True}, "for-loop": {"foreach": False}}[v.adam]
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, **adam)

    def loss(x):
        with autocast(v.precision, device):
            return neg_elbo(model, x).loss

    loss_fn = torch.compile(loss) if v.compiled else loss

    def step(x):
        opt.zero_grad(set_to_none=True)
        loss_fn(x.contiguous(memory_format=v.memory_format)).backward()
        opt.step()

    return step


def next_step(step, v: Variant, *, pool, default_threads: int):
    """A zero-argument call: step on the next batch of pool, with v's threads (one call per interleaved round)."""
    done = [0]

    def call():
        torch.set_num_threads(v.threads or default_threads)
        start = (done[0] * v.batch) % (len(pool) - v.batch)
        done[0] += 1
        step(pool[start : start + v.batch])

    return call


def step_flops(batch: int = 128) -> int:
    """FLOPs of one fp32 training step of the seed VAE (forward and backward; the optimizer's
    elementwise update is not counted: < 0.1% of them)."""
    from torch.utils.flop_counter import FlopCounterMode

    torch.manual_seed(0)
    model = VAE()
    with FlopCounterMode(display=False) as counter:
        neg_elbo(model, torch.rand(batch, 1, 28, 28)).loss.backward()
    return counter.get_total_flops()


def time_data_handling(images, *, batch: int, n: int = 50) -> float:
    """Median seconds to slice a shuffled batch, lay it out channels_last and binarize it."""
    order = torch.randperm(len(images))
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        xb = images[order[i * batch : (i + 1) * batch]].to("cpu", memory_format=CL)
        torch.bernoulli(xb)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def time_eval(images, rounds: int = 2) -> dict:
    """Median seconds to evaluate -ELBO on images under no_grad and under inference_mode, interleaved."""
    torch.manual_seed(0)
    model = VAE().to(memory_format=CL).eval()
    modes = {"no_grad": torch.no_grad, "inference_mode": torch.inference_mode}

    def evaluate(mode):
        with mode():
            for i in range(0, len(images), 1000):
                neg_elbo(model, images[i : i + 1000].contiguous(memory_format=CL)).neg_elbo.item()

    calls = {name: (lambda mode=mode: evaluate(mode)) for name, mode in modes.items()}
    times = interleave(calls, Schedule(min_rounds=rounds, max_rounds=rounds, **ONCE_A_ROUND))
    return {name: statistics.median(t) for name, t in times.items()}


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="timed steps per variant (after 2 warm-up steps)")
    parser.add_argument("--variants", default=DEFAULT, help=f"comma-separated, of: {','.join(VARIANTS)}")
    parser.add_argument("--compile", action="store_true", help="add the torch.compile variant (slow warm-up)")
    parser.add_argument("--no-eval", action="store_true", help="skip timing test-set evaluation (no_grad vs inference_mode)")
    args = parser.parse_args(argv)
    names = args.variants.split(",") + (["compile"] if args.compile else [])
    unknown = [n for n in names if n not in VARIANTS]
    if unknown:
        parser.error(f"unknown variant(s) {', '.join(unknown)}; known: {', '.join(VARIANTS)}")
    default_threads = torch.get_num_threads()
    pool = torch.rand(2048, 1, 28, 28)
    steps = {}
    for name in names:
        v = VARIANTS[name]
        steps[name] = make_step(v)
        torch.set_num_threads(v.threads or default_threads)
        t0 = time.perf_counter()
        for i in range(2):  # warm-up; compiles the compiled one
            steps[name](pool[i * v.batch : (i + 1) * v.batch])
        print(f"{name}: warm-up {time.perf_counter() - t0:.1f} s", flush=True)
    sgemm, sgemm_flops = sgemm_call(2048)
    calls = {name: next_step(step, VARIANTS[name], pool=pool, default_threads=default_threads) for name, step in steps.items()}
    calls[None] = lambda: (torch.set_num_threads(default_threads), sgemm())  # None: no variant's name
    times = interleave(calls, Schedule(min_rounds=args.steps, max_rounds=args.steps, **ONCE_A_ROUND))
    sgemm_times = times.pop(None)
    torch.set_num_threads(default_threads)

    flags = cpu_flags()
    print(f"torch {torch.__version__}, {default_threads} threads, median of {args.steps} interleaved steps; "
          f"native bf16 on this CPU: {native_bf16('cpu', flags)} "
          f"(amx_bf16 {'amx_bf16' in flags}, avx512_bf16 {'avx512_bf16' in flags})")
    epoch = {name: statistics.median(t) * EPOCH_IMAGES / VARIANTS[name].batch for name, t in times.items()}
    base = epoch[names[0]]
    flops_per_image = step_flops() / 128
    sgemm_rate = sgemm_flops / statistics.median(sgemm_times)
    print(f"{'variant':<14} {'batch':>5} {'ms/step':>8} {'s/epoch':>8} {'speed vs ' + names[0]:>14} {'of sgemm':>9}")
    for name, t in times.items():
        rate = flops_per_image * EPOCH_IMAGES / epoch[name]
        print(f"{name:<14} {VARIANTS[name].batch:5d} {statistics.median(t) * 1e3:8.1f} {epoch[name]:8.1f} "
              f"{base / epoch[name]:13.2f}x {rate / sgemm_rate:9.2f}")
    print(f"roofline: {flops_per_image / 1e6:.1f} MFLOP per training image (forward + backward), sgemm "
          f"{sgemm_rate / 1e9:.1f} GFLOP/s on {default_threads} threads: an fp32 epoch takes at least "
          f"{flops_per_image * EPOCH_IMAGES / sgemm_rate:.1f} s on this CPU even at sgemm speed")

    images = torch.rand(10_000, 1, 28, 28)
    data = time_data_handling(images, batch=128)
    print(f"data handling per batch of 128 (slice, channels_last, bernoulli): {data * 1e3:.2f} ms "
          f"= {data * EPOCH_IMAGES / 128:.2f} s/epoch ({data / statistics.median(times[names[0]]):.1%} of a {names[0]} step)")
    if not args.no_eval:
        ev = time_eval(images)
        print("evaluation of 10,000 test images: " + ", ".join(f"{k} {v:.2f} s" for k, v in ev.items()))


if __name__ == "__main__":
    main()
