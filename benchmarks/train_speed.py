"""Training throughput of the seed VAE on this CPU: layouts and torch.compile side by side.

    python -m edgevae.benchmarks.train_speed [--steps 20] [--batch-size 128]

Each configuration trains its own model on the same random batches; steps are interleaved round-robin
so that load drift hits all alike, and the median step time is turned into seconds per 60k-image epoch.
"""

import argparse
import statistics
import time

import torch

from edgevae.train.loss import neg_elbo
from edgevae.train.model import VAE

EPOCH_IMAGES = 60_000


def make_step(memory_format, compiled: bool, batch_size: int):
    torch.manual_seed(0)
    model = VAE().to(memory_format=memory_format)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss = torch.compile(lambda x: neg_elbo(model, x).loss) if compiled else (lambda x: neg_elbo(model, x).loss)

    def step(x):
        opt.zero_grad(set_to_none=True)
        loss(x.contiguous(memory_format=memory_format)).backward()
        opt.step()

    return step


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--no-compile", action="store_true")
    args = parser.parse_args(argv)
    configs = {"contiguous": (torch.contiguous_format, False), "channels_last": (torch.channels_last, False)}
    if not args.no_compile:
        configs["channels_last + compile"] = (torch.channels_last, True)
    batches = torch.rand(4, args.batch_size, 1, 28, 28)
    steps = {}
    for name, (fmt, compiled) in configs.items():
        steps[name] = make_step(fmt, compiled, args.batch_size)
        t0 = time.perf_counter()
        for x in batches[:2]:  # warm-up; compiles the compiled one
            steps[name](x)
        print(f"{name}: warm-up {time.perf_counter() - t0:.1f} s", flush=True)
    times = {name: [] for name in configs}
    for i in range(args.steps):
        for name, step in steps.items():
            t0 = time.perf_counter()
            step(batches[i % len(batches)])
            times[name].append(time.perf_counter() - t0)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, batch {args.batch_size}, median of {args.steps} interleaved steps")
    base = statistics.median(times["contiguous"])
    for name, t in times.items():
        median = statistics.median(t)
        print(f"{name:<26} {median * 1e3:7.1f} ms/step  {median * EPOCH_IMAGES / args.batch_size:6.1f} s/epoch  {base / median:4.2f}x")


if __name__ == "__main__":
    main()
