"""Load: one VAERuntime shared by 8 threads gives exactly the serial results, call for call; and resident
memory stays flat over 100k small calls. The short thread test runs by default; the long ones are
`slow` (`python -m pytest -m slow`) and print their figures (`-s` shows them)."""

import threading

import numpy as np
import pytest
from helpers import make_model_dir

from edgevae.runtime import VAERuntime

THREADS = 8
LATENT = 8


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    return make_model_dir(tmp_path_factory.mktemp("load") / "model", latent_dim=LATENT)


def call(rt: VAERuntime, i: int) -> np.ndarray:
    """Call number i: a mix of every entry point, small batches, inputs and seeds derived from i."""
    rng = np.random.default_rng(i)
    kind = i % 4
    if kind == 0:
        return rt.sample(1 + i % 3, seed=i)
    if kind == 1:
        return rt.decode(rng.standard_normal((1 + i % 2, LATENT), dtype=np.float32))
    x = rng.random((1 + i % 2, 1, 28, 28), dtype=np.float32)
    if kind == 2:
        return np.concatenate(rt.encode(x), axis=1)
    return rt.reconstruct(x, seed=i)


def run_threads(rt: VAERuntime, calls: int) -> dict:
    """calls calls spread over THREADS threads started together: {i: output}."""
    results, errors = {}, []
    barrier = threading.Barrier(THREADS)

    def work(offset):
        barrier.wait()
        try:
            for i in range(offset, calls, THREADS):
                results[i] = call(rt, i)
        except BaseException as err:  # surfaced below: an exception in a thread would otherwise vanish
            errors.append(err)

    threads = [threading.Thread(target=work, args=(k,)) for k in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    return results


def check_against_serial(model_dir, calls: int) -> None:
    serial_rt = VAERuntime.load(model_dir)
    serial = [call(serial_rt, i) for i in range(calls)]
    shared = VAERuntime.load(model_dir)  # fresh: 8 threads race to build its sessions
    results = run_threads(shared, calls)
    assert sorted(results) == list(range(calls))
    mismatches = [i for i in range(calls) if not np.array_equal(results[i], serial[i])]
    assert mismatches == [], f"{len(mismatches)} of {calls} calls differ from the serial run, first {mismatches[:5]}"


def test_eight_threads_sharing_one_runtime_get_the_serial_results(model_dir):
    check_against_serial(model_dir, calls=400)  # ~1-2 s here


@pytest.mark.slow
def test_thousands_of_threaded_calls_get_the_serial_results(model_dir):
    check_against_serial(model_dir, calls=8000)
    print(f"\nload: {THREADS} threads x {8000 // THREADS} calls on one runtime == serial, all 8000")


def rss_kib() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


@pytest.mark.slow
def test_resident_memory_stays_flat_over_100k_calls(model_dir):
    """After a warm-up (sessions built, allocator pools grown), 100k batch-1 calls must not grow RSS by
    more than 8 MiB: a leak of just 84 bytes per call would exceed it, while glibc's arenas and
    onnxruntime's memory pattern caches move by a few MiB between measurements without any leak."""
    rt = VAERuntime.load(model_dir)
    z = np.random.default_rng(0).standard_normal((1, LATENT), dtype=np.float32)
    x = np.random.default_rng(1).random((1, 1, 28, 28), dtype=np.float32)
    for _ in range(5000):
        rt.decode(z)
        rt.encode(x)
    before = rss_kib()
    samples = []
    for i in range(100_000):
        if i % 2:
            rt.decode(z)
        else:
            rt.encode(x)
        if i % 10_000 == 9_999:
            samples.append(rss_kib())
    growth = samples[-1] - before
    print(f"\nRSS: {before / 1024:.1f} MiB after warm-up, {samples[-1] / 1024:.1f} MiB after 100k calls "
          f"(every 10k: {[round(s / 1024, 1) for s in samples]})")
    assert growth < 8 * 1024, f"RSS grew {growth} KiB over 100k calls"
