"""Data-parallel training with DistributedDataParallel, launched by torchrun:

    torchrun --standalone --nproc_per_node N -m edgevae train --epochs E --out RUN ...

torchrun sets RANK / WORLD_SIZE / LOCAL_RANK in each process; without them `edgevae train` is a plain
single process (world size 1) and nothing here touches torch.distributed. Backend: gloo on CPU, nccl
on CUDA (one GPU per process, cuda:LOCAL_RANK).

The contract that makes N processes train the same model as one process (up to float summation order):
- `--batch-size` is the GLOBAL batch. Every rank draws the same epoch permutation and the same noise for
  the whole global batch (posterior eps, binarization) from a generator seeded by (seed, epoch), then
  keeps its own contiguous slice (`local_slice`): the shards are disjoint, cover the epoch, and no two
  ranks share noise. Torch's global generator is seeded per rank, for anything else that draws from it.
- Each rank's loss is its local mean scaled by local_n * N / global_n, so DDP's gradient average equals
  the gradient of the global batch mean even when the global batch does not split evenly.
- Rank 0 alone evaluates and writes checkpoint, metrics and grids; --resume reads the run folder on
  every rank, so it must be visible to all of them (one machine, or a shared file system).
"""

import contextlib
import os
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def world_from_env(env=os.environ) -> World:
    """The World torchrun describes in env (RANK, WORLD_SIZE, LOCAL_RANK), or World() outside torchrun."""
    try:
        world = World(int(env.get("RANK", 0)), int(env.get("WORLD_SIZE", 1)), int(env.get("LOCAL_RANK", 0)))
    except ValueError:
        raise ValueError("RANK, WORLD_SIZE and LOCAL_RANK must be integers (as torchrun sets them)") from None
    if world.size < 1 or not 0 <= world.rank < world.size:
        raise ValueError(f"RANK {world.rank} is not in [0, WORLD_SIZE {world.size})")
    return world


def init(world: World, device: str) -> None:
    """Join the process group (gloo on CPU, nccl on CUDA) when world has more than one process."""
    if not world.distributed:
        return
    import torch.distributed as dist

    if device == "cuda":
        torch.cuda.set_device(world.local_rank)  # "cuda" then means this rank's GPU
    dist.init_process_group("nccl" if device == "cuda" else "gloo")


def shutdown(world: World) -> None:
    if world.distributed:
        import torch.distributed as dist

        dist.barrier()
        dist.destroy_process_group()


def wrap(module: torch.nn.Module, world: World, *, device: str) -> torch.nn.Module:
    """module under DistributedDataParallel (gradients averaged across ranks), or module itself."""
    if not world.distributed:
        return module
    from torch.nn.parallel import DistributedDataParallel

    ids = [world.local_rank] if device == "cuda" else None
    return DistributedDataParallel(module, device_ids=ids)


def local_slice(global_n: int, world: World) -> slice:
    """This rank's contiguous part of a global batch of global_n items (sizes differ by at most one)."""
    base, extra = divmod(global_n, world.size)
    start = world.rank * base + min(world.rank, extra)
    return slice(start, start + base + (world.rank < extra))


def sum_across(value: float, world: World, *, device: str) -> float:
    """value summed over all ranks (value itself in a single process)."""
    if not world.distributed:
        return value
    import torch.distributed as dist

    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.all_reduce(t)
    return t.item()


def broadcast(obj, world: World):
    """Rank 0's obj on every rank (obj itself in a single process): one decision, taken once, for all ranks."""
    if not world.distributed:
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


@contextlib.contextmanager
def all_cores(world: World, device: str):
    """Rank 0 evaluates and writes while the other ranks wait in their next all-reduce (asleep, not spinning):
    meanwhile its one thread may use every usable core."""
    if not (world.distributed and device == "cpu"):
        yield
        return
    from edgevae.cpu import usable_cores

    before = torch.get_num_threads()
    torch.set_num_threads(usable_cores())
    try:
        yield
    finally:
        torch.set_num_threads(before)
