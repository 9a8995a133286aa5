"""Several processes, one `fit`: what torchrun's DistributedDataParallel (DDP) needs, in one place.

`torchrun --nproc-per-node N -m medtl_helpers train …` starts N copies of the same command and
tells each its RANK (0 to WORLD_SIZE - 1 over all nodes), WORLD_SIZE and LOCAL_RANK (its GPU on
its node). Every process loads the same data and runs the same `fit`:

- order: every process seeds the batch order's generator alike and draws from it alike, so all cut
  the same shuffled order into the same global batches of batch_size x WORLD_SIZE images; each
  trains on its slice (`World.split`). DDP averages the gradients, so every process takes the same
  optimizer step and holds the same weights.
- what should differ between processes (augmentation, dropout) draws from a seed of its own.
- validation: each process scores a slice of the validation set and the probabilities are gathered
  (`World.gather`), so every process holds the same numbers and takes the same decisions (best
  epoch, early stop, divergence) without being told.
- rank 0 alone prints, shows progress bars and writes files. Checkpoints hold the plain model's
  weights, never DDP's wrapper, so they load in a single process.

With one process (no torchrun) `start` returns `World()`: size 1, no process group, and each helper
here hands its input back unchanged.
"""

from __future__ import annotations

import os
import warnings
from contextlib import contextmanager, redirect_stdout
from dataclasses import dataclass, field
from datetime import timedelta

import numpy as np
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm
from torch.nn.parallel import DistributedDataParallel

from medtl_helpers.errors import MedtlError

TIMEOUT_S = 600.0  # a process that stops answering ends the run after this long, not a hang
TIMEOUT_VARIABLE = "MEDTL_DDP_TIMEOUT"
BACKENDS = {"cuda": "nccl", "cpu": "gloo"}


@dataclass(frozen=True)
class World:
    """This process's place among the processes of one run; `World()` is a single process."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    timeout_s: float = TIMEOUT_S
    owns_group: bool = False  # `start` opened the process group, so `close` ends it

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def bounds(self, n: int, rank: int | None = None) -> tuple[int, int]:
        """[start, stop) of a process's share of `n` items; shares differ by at most one."""
        rank = self.rank if rank is None else rank
        return n * rank // self.size, n * (rank + 1) // self.size

    def split(self, batch: torch.Tensor) -> torch.Tensor:
        """This process's part of a global batch (one process: all of it)."""
        if self.size == 1:
            return batch
        start, stop = self.bounds(len(batch))
        return batch[start:stop]

    def gather(self, part: torch.Tensor, n: int) -> torch.Tensor:
        """Every process's `part` (rows `bounds(n)` of n), in rank order, on every process."""
        if self.size == 1:
            return part
        sizes = [stop - start for start, stop in (self.bounds(n, r) for r in range(self.size))]
        padded = part.new_zeros((max(sizes), *part.shape[1:]), device=self.device)
        padded[: len(part)] = part  # all_gather needs equal shapes
        pieces = [torch.empty_like(padded) for _ in sizes]
        dist.all_gather(pieces, padded)
        return torch.cat([piece[:size] for piece, size in zip(pieces, sizes)]).to(part.device)

    def mean(self, value: float) -> float:
        """The average of `value` over the processes."""
        if self.size == 1:
            return value
        total = torch.tensor([float(value)], dtype=torch.float64, device=self.device)
        dist.all_reduce(total)
        return float(total) / self.size

    def share(self, amount: torch.Tensor) -> torch.Tensor:
        """`amount` over its mean across the processes: 1.0 for an equal share."""
        total = amount.detach().float().reshape(1).clone()
        if self.size > 1:
            dist.all_reduce(total)
        return amount * self.size / total

    def wrap(self, module: nn.Module) -> nn.Module:
        """DDP around `module`, over the parameters that require grad now (one process: module)."""
        if self.size == 1:
            return module
        ids = [self.device.index] if self.device.type == "cuda" else None
        return DistributedDataParallel(module, device_ids=ids)

    def sync_buffers(self, module: nn.Module) -> None:
        """Rank 0's buffers (BatchNorm's running statistics) on every process, as DDP does at the
        start of each forward pass: validation and checkpoints then use one model."""
        if self.size > 1:
            for buffer in module.buffers():
                dist.broadcast(buffer, src=0)

    def process_seed(self, seed: int) -> int:
        """A seed of this process's own, derived from the run's seed and the rank."""
        return int(np.random.SeedSequence([seed % 2**63, self.rank]).generate_state(1)[0])

    def states(self, state: torch.Tensor) -> list[torch.Tensor]:
        """Every process's generator state (a uint8 tensor), in rank order."""
        rows = self.gather(state.reshape(1, -1).to(self.device), self.size).cpu()
        return [row.clone() for row in rows]  # each its own storage, as set_state needs

    def check_same(self, value: object, what: str, fix: str) -> None:
        """Refuse to go on when the processes hold different `value`s (say which, and `fix`)."""
        if self.size == 1:
            return
        values: list[object] = [None] * self.size
        dist.all_gather_object(values, value)
        if any(other != values[0] for other in values):
            raise MedtlError(f"The processes disagree about {what} (by rank: {values}). {fix}")

    def check_shares(self, n_train: int, n_val: int) -> None:
        """Every process needs two training images per batch (BatchNorm) and a validation one."""
        if self.size > 1 and (n_train < 2 * self.size or n_val < self.size):
            raise MedtlError(
                f"{n_train} training and {n_val} validation images are too few for {self.size} "
                f"processes: each needs at least 2 training and 1 validation image. Use more "
                "data, or fewer processes (torchrun --nproc-per-node)."
            )

    def barrier(self) -> None:
        if self.size > 1:
            dist.barrier()

    def close(self) -> None:
        if self.owns_group and dist.is_initialized():
            dist.destroy_process_group()


def start(device: torch.device) -> World:
    """The world torchrun describes in RANK, WORLD_SIZE and LOCAL_RANK, its process group open.

    Without torchrun: `World(device=device)`, and nothing is set up. A process group opened by the
    caller is used as it is (and left open). On CUDA each process takes GPU LOCAL_RANK (NCCL);
    on the CPU the processes talk over gloo. Collectives give up after MEDTL_DDP_TIMEOUT seconds.
    """
    if dist.is_available() and dist.is_initialized():
        rank, size = dist.get_rank(), dist.get_world_size()
    else:
        rank, size = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    if size == 1:
        return World(device=device)
    local = int(os.environ.get("LOCAL_RANK", rank))
    device, timeout = process_device(device, local), timeout_s()
    owns = not dist.is_initialized()
    if owns:
        dist.init_process_group(BACKENDS[device.type], timeout=timedelta(seconds=timeout))
    return World(rank, size, local, device, timeout, owns)


def process_device(device: torch.device, local_rank: int) -> torch.device:
    """cuda:LOCAL_RANK for a GPU run (one GPU per process), the CPU as it is."""
    if device.type == "cpu":
        return device
    if device.type != "cuda":
        raise MedtlError(
            f"Training in several processes runs on CUDA GPUs (NCCL) or the CPU (gloo), not on "
            f"{device.type}: use --device cuda or --device cpu."
        )
    if local_rank >= torch.cuda.device_count():
        raise MedtlError(
            f"LOCAL_RANK {local_rank} needs GPU {local_rank}, but this node has "
            f"{torch.cuda.device_count()}: start at most that many processes per node "
            "(torchrun --nproc-per-node)."
        )
    device = torch.device("cuda", local_rank)
    torch.cuda.set_device(device)
    return device


def timeout_s() -> float:
    text = os.environ.get(TIMEOUT_VARIABLE, "").strip()
    try:
        value = float(text) if text else TIMEOUT_S
    except ValueError:
        value = -1.0
    if not value > 0:
        raise MedtlError(f"{TIMEOUT_VARIABLE}={text!r} is not a number of seconds above 0.")
    return value


def env_rank() -> int:
    """This process's rank as torchrun set it (0 without torchrun)."""
    return int(os.environ.get("RANK", 0))


@contextmanager
def main_prints_only(rank: int):
    """Below rank 0, print() and warnings go nowhere: one process speaks for the run."""
    if rank == 0:
        yield
        return
    with open(os.devnull, "w") as devnull, redirect_stdout(devnull), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def lost_contact(err: BaseException, world: World) -> MedtlError | None:
    """The message for a collective that failed because another process crashed or stalled."""
    text = str(err)
    # gloo's words when a peer is gone: "Connection closed by peer", "Timed out waiting", or,
    # when the timeout fires in DDP's buffer broadcast, "Application timeout caused pair closure"
    markers = ("gloo", "NCCL", "pair closure")
    failed = isinstance(err, dist.DistError) or any(m in text for m in markers)
    if world.size == 1 or not failed:
        return None
    return MedtlError(
        f"Process {world.rank} of {world.size} lost contact with the others "
        f"({text.splitlines()[0][:160] if text else type(err).__name__}). Another process "
        "crashed or stopped answering: its own error is in its output (torchrun prints it too). "
        f"A silent process ends the run after {world.timeout_s:g} s ({TIMEOUT_VARIABLE}). Fix "
        "that error, then run the same torchrun command again with --resume."
    )


@contextmanager
def session(world: World, model: nn.Module, sync_batchnorm: bool = False):
    """`fit`'s time in the process group: rank 0 alone prints, SyncBatchNorm (if asked) for the
    run only, a lost process said in words, and the group closed if `start` opened it."""
    kinds = None
    try:
        with main_prints_only(world.rank):
            kinds = use_sync_batchnorm(model, world) if sync_batchnorm else None
            yield
            world.barrier()  # rank 0's files are complete before any process reads them
    except RuntimeError as err:
        if (problem := lost_contact(err, world)) is None:
            raise
        raise problem from err
    finally:
        if kinds:
            plain_batchnorm(model, kinds)
        world.close()


def use_sync_batchnorm(model: nn.Module, world: World) -> dict[str, type] | None:
    """BatchNorm layers that normalise with the statistics of the global batch, computed across
    the processes; returns each layer's own class, for `plain_batchnorm` (None: left alone)."""
    if world.size == 1:
        print("sync_batchnorm: a single process has nothing to synchronise; plain BatchNorm.")
        return None
    if world.device.type != "cuda":
        raise MedtlError(
            "SyncBatchNorm runs on GPUs only (PyTorch has no CPU kernel for it); on the CPU each "
            "process keeps its own BatchNorm statistics. Drop --sync-batchnorm "
            "(fit(..., sync_batchnorm=False))."
        )
    kinds = {name: type(m) for name, m in model.named_modules() if isinstance(m, _BatchNorm)}
    nn.SyncBatchNorm.convert_sync_batchnorm(model)  # in place below the root (a ResNet)
    return kinds


def plain_batchnorm(model: nn.Module, kinds: dict[str, type]) -> nn.Module:
    """Each SyncBatchNorm back to its own class, sharing its parameters and statistics."""
    for name, sync in list(model.named_modules()):
        if not isinstance(sync, nn.SyncBatchNorm):
            continue
        plain = kinds[name](sync.num_features, sync.eps, sync.momentum, sync.affine)
        for key in ("weight", "bias", "running_mean", "running_var", "num_batches_tracked"):
            setattr(plain, key, getattr(sync, key))
        plain.train(sync.training)
        parent, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent), child, plain)
    return model
