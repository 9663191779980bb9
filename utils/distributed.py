"""torch.distributed helpers shared by the scripts; all are no-ops in a single process."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable

import torch
import torch.distributed as dist

from utils.errors import UserError

_agreement_group = None  # gloo group for small CPU-side agreements (no GPU synchronisation under NCCL)


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def is_main_process() -> bool:
    return rank() == 0


def launched_by_torchrun() -> bool:
    return "LOCAL_RANK" in os.environ and int(os.environ.get("WORLD_SIZE", "1")) > 1


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def resolve_device(name: str) -> torch.device:
    """``auto`` → this process's GPU (``LOCAL_RANK`` under torchrun) if CUDA is available, else the CPU."""
    if name == "auto":
        return torch.device("cuda", local_rank()) if torch.cuda.is_available() else torch.device("cpu")
    device = torch.device(name)
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"device '{name}': no CUDA device is visible (use cpu or auto)")
        if device.index is None:
            device = torch.device("cuda", local_rank())
    return device


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over all processes (in place) and return it."""
    if is_distributed():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def init_from_environment(use_cuda: bool) -> bool:
    """Join the process group torchrun describes (NCCL on CUDA, gloo on CPU); False when not under torchrun."""
    if not launched_by_torchrun():
        return False
    if not is_distributed():
        if use_cuda:
            torch.cuda.set_device(local_rank())
        dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return True


def barrier() -> None:
    if is_distributed():
        dist.barrier()


@contextlib.contextmanager
def local_main_first():
    """Run the block on each machine's local rank 0 first, then on the other processes (shared caches)."""
    if local_rank() != 0:
        barrier()
    try:
        yield
    finally:  # a failure on the first process still releases the others (they then fail or succeed themselves)
        if local_rank() == 0:
            barrier()


def broadcast_from_main(obj):
    """Rank 0's ``obj`` on every rank (any picklable object)."""
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_gather_objects(obj) -> list:
    """Every rank's ``obj``, in rank order, on every rank (any picklable object)."""
    if not is_distributed():
        return [obj]
    gathered = [None] * world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


def _cpu_group():
    global _agreement_group
    if _agreement_group is None:  # created at the first call, which every process makes at the same point
        _agreement_group = dist.group.WORLD if dist.get_backend() == "gloo" else dist.new_group(backend="gloo")
    return _agreement_group


def start_max_over_processes(value: int) -> Callable[[], int]:
    """The largest ``value`` over all processes, started now and read by calling the result later.

    A collective on CPU tensors (no GPU synchronisation) that runs in the background until it is read.
    """
    if not is_distributed():
        return lambda: value
    box = torch.tensor([value], dtype=torch.int64)
    work = dist.all_reduce(box, op=dist.ReduceOp.MAX, group=_cpu_group(), async_op=True)

    def result() -> int:
        work.wait()
        return int(box.item())

    return result


def max_over_processes(value: int) -> int:
    """The largest ``value`` over all processes (see :func:`start_max_over_processes`), waiting for it."""
    return start_max_over_processes(value)()


def gather_to_main(obj) -> list | None:
    """Every process's ``obj`` (picklable), by rank, on the main process; ``None`` on the others."""
    if not is_distributed():
        return [obj]
    gathered = [None] * world_size() if is_main_process() else None
    dist.gather_object(obj, gathered, dst=0, group=_cpu_group())
    return gathered


def shutdown() -> None:
    global _agreement_group
    if is_distributed():
        dist.destroy_process_group()
    _agreement_group = None


class ShardSampler(torch.utils.data.Sampler):
    """Every ``world_size``-th index from ``rank``, without padding: each sample is seen exactly once.

    (DistributedSampler pads the last round with repeats, which would bias evaluation metrics.)
    """

    def __init__(self, length: int, rank: int, world_size: int):
        self.indices = list(range(rank, length, world_size))

    def __iter__(self):
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def without_ddp(model: torch.nn.Module) -> torch.nn.Module:
    """The module inside DistributedDataParallel (compiled or not), for evaluation.

    Evaluation shards may differ in batch count between processes; DDP's forward would wait for the others.
    """
    inner = getattr(model, "_orig_mod", model)
    return inner.module if isinstance(inner, torch.nn.parallel.DistributedDataParallel) else model


def broadcast_buffers(model: torch.nn.Module) -> None:
    """Give every process rank 0's buffers (BatchNorm running statistics).

    DDP broadcasts buffers at the start of each training forward, but each process then updates its own
    copy; without this, processes would evaluate their shards with slightly different statistics.
    """
    if is_distributed():
        for buffer in model.buffers():
            dist.broadcast(buffer, src=0)
