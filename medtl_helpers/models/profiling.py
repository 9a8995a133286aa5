"""What a ResNet costs on this machine: parameters, forward FLOPs, latency and training memory.

Notebook 02 chooses a depth from these numbers, so they are measured here rather than copied from
a paper: FLOPs by `torch.utils.flop_counter.FlopCounterMode` (it counts a multiply-add as 2
FLOPs, so ResNet-18's published 1.8 GMACs at 224 px show up as about 3.6 GFLOPs), latency as
the fastest of timed forward passes taken round-robin across the architectures (so that load
from other jobs on a shared machine falls on all of them alike), and memory for one training
step in fp32 (`fit` trains under autocast where the device computes 16-bit natively, so its
activations can take less). The published parameter counts (torchvision, 1000-class ImageNet
heads) sit alongside so each row can be checked.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode
from torchvision.models import get_model

from medtl_helpers.models.freezing import count_parameters
from medtl_helpers.models.modes import model_device

PUBLISHED_PARAMS_M = {
    "resnet18": 11.7,
    "resnet34": 21.8,
    "resnet50": 25.6,
    "resnet101": 44.5,
    "resnet152": 60.2,
}
# torchvision's model table at 224 px; its "GFLOPS" column counts multiply-adds.
PUBLISHED_GMACS_224 = {
    "resnet18": 1.81,
    "resnet34": 3.66,
    "resnet50": 4.09,
    "resnet101": 7.80,
    "resnet152": 11.51,
}


def _images(model: nn.Module, image_size: int, batch: int) -> torch.Tensor:
    return torch.randn(batch, 3, image_size, image_size, device=model_device(model))


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work, so that a timer read next measures it (CPU: nothing)."""
    # GPU kernels run asynchronously: without this the timer stops before the GPU has finished.
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def forward_gflops(model: nn.Module, image_size: int, batch: int = 1) -> float:
    """Forward GFLOPs per image (a multiply-add counts as 2), counted on one forward pass.

    Works on a model on the "meta" device too, which computes nothing and so counts instantly.
    """
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(_images(model, image_size, batch))
    return counter.get_total_flops() / batch / 1e9


def _timed_pass_ms(model: nn.Module, x: torch.Tensor) -> float:
    """Wall-clock milliseconds of one forward pass, the device's queued work included."""
    synchronize(x.device)
    start = time.perf_counter()
    model(x)
    synchronize(x.device)
    return 1000 * (time.perf_counter() - start)


def interleaved_latency_ms(
    models: dict[str, nn.Module], image_size: int, batch: int = 1, repeats: int = 5
) -> dict[str, float]:
    """The fastest of `repeats` timed forward passes of each model, timed round-robin.

    Each model gets one untimed warm-up pass first: it pays for memory allocation and kernel
    selection, which a deployed model pays once, not per image. Then every round times one pass
    of each model in turn, so that a burst of load from another job on a shared machine falls on
    all the models alike instead of on whichever one was being timed; the fastest pass of each
    is kept, because such load only ever adds time. Eval mode, inference_mode.
    """
    inputs = {}
    with torch.inference_mode():
        for name, model in models.items():
            model.eval()
            inputs[name] = _images(model, image_size, batch)
            _timed_pass_ms(model, inputs[name])
        rounds = [
            {name: _timed_pass_ms(model, inputs[name]) for name, model in models.items()}
            for _ in range(repeats)
        ]
    return {name: min(times[name] for times in rounds) for name in models}


def ratios_disagree(time_ratio: float, flops_ratio: float, factor: float = 3.0) -> bool:
    """Whether a ratio of times and the ratio of FLOPs differ by `factor` or more, either way.

    Between two ResNets time need not follow FLOPs exactly, for three known reasons. Time that
    follows the number of layers rather than the FLOPs strays from them by the ratio of the two
    (at most about 1.3x among these five networks, whose layers and FLOPs rise together).
    Bottleneck networks store and move more activations per FLOP, so their memory, and often
    their time, grow faster than their FLOPs; that is not bounded here. Fixed costs per step
    (loading, augmenting) pull a ratio of training times towards 1: for notebook 02's fit-time
    pair, ResNet-50 over ResNet-18, at most by that FLOPs ratio itself (2.25x from 64 px up,
    2.31x at 28 px); for deeper pairs, whose FLOPs ratios are larger, they could pass 3x, but
    `interleaved_latency_ms` times a ready-made input between two synchronisations and so has
    almost no fixed cost per pass. 3x is set above what these reasons are expected to reach,
    not proved to be: at 3x or more, suspect that something else changed between the two
    timings, typically another job on the machine.
    Not being flagged does not make a timing clean: load that slows both alike passes.
    """
    return max(time_ratio / flops_ratio, flops_ratio / time_ratio) >= factor


def steady_epochs(seconds: Sequence[float]) -> list[float]:
    """A run's epoch times without the first's start-up: all but the first where there are 3
    or more, since then at least two remain to compare; otherwise all of them, start-up included.
    """
    return list(seconds[1:]) if len(seconds) >= 3 else list(seconds)


def startup_seconds(seconds: Sequence[float]) -> float | None:
    """How much longer the first epoch took than the median of the rest (3 or more epochs).

    That excess is the run's start-up (memory allocation, and on a GPU with
    `cudnn.benchmark` the search for each convolution shape's fastest kernel), or load from
    another job during the first epoch. Negative if a later epoch was slowed instead. None with
    fewer than 3 epochs, where `steady_epochs` keeps the first.
    """
    if len(seconds) < 3:
        return None
    return seconds[0] - statistics.median(seconds[1:])


def uneven_epochs(seconds: Sequence[float], factor: float = 2.0) -> bool:
    """Whether a run's slowest steady epoch took `factor` times its fastest or more.

    `seconds` are `fit`'s, one per epoch; the steady ones are `steady_epochs`: the first is left
    out where there are 3 or more. Every epoch of a run trains the same number of batches and
    validates the same images, so they differ only by the first epoch's start-up
    (`startup_seconds`) and by load from other jobs. With the first left out, a flag points at
    load. With only 2 epochs the first is kept: 2x leaves room for start-up in epochs of tens
    of seconds, as on a CPU, but where an epoch takes seconds (a small run on a GPU) start-up
    alone can pass it. Either way a flagged run's seconds are not the network's steady cost per
    epoch. It needs no FLOPs model, but one epoch has nothing to be compared with (False).
    """
    steady = steady_epochs(seconds)
    return len(steady) > 1 and max(steady) >= factor * min(steady)


def memory_method(device: torch.device | str) -> str:
    """In words, what `training_memory_mb` measures on this kind of device."""
    if torch.device(device).type == "cuda":
        return (
            "peak CUDA memory allocated during an fp32 forward + backward "
            "(torch.cuda.max_memory_allocated)"
        )
    return "weights + gradients + activations saved for backward in fp32 (saved-tensors hook)"


def saved_activation_bytes(model: nn.Module, x: torch.Tensor) -> int:
    """Bytes of the tensors autograd keeps from the forward pass for backward.

    Each storage is counted once (an in-place ReLU and the next conv save the same one), and
    the weights, which autograd also saves, are left out: they are counted separately.
    """
    weights = {p.untyped_storage().data_ptr() for p in model.parameters()}
    storages: dict[int, int] = {}

    def pack(tensor: torch.Tensor) -> torch.Tensor:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in weights:
            storages[storage.data_ptr()] = storage.nbytes()
        return tensor

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda tensor: tensor):
        model(x)
    return sum(storages.values())


def training_memory_mb(model: nn.Module, image_size: int, batch: int = 8) -> float:
    """Memory of one fp32 training step in MB (2**20 bytes); see `memory_method` for what is
    counted. No autocast, unlike `fit` where the device computes 16-bit natively.

    On CUDA: the allocator's peak over forward and backward, weights and gradients included.
    Elsewhere there is no allocator peak to read, so: weights + gradients (same size) + the
    activations the forward pass saves for backward, which is the part that grows with batch
    size and image size. The optimizer's state (AdamW adds two copies of the weights) is not
    included in either.
    """
    model.train()
    model.zero_grad(set_to_none=True)
    x = _images(model, image_size, batch)
    if x.device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(x.device)
        model(x).float().sum().backward()
        synchronize(x.device)
        used = torch.cuda.max_memory_allocated(x.device)
    else:
        weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
        used = 2 * weight_bytes + saved_activation_bytes(model, x)
    model.zero_grad(set_to_none=True)
    return used / 2**20


def depth_table(
    archs: Sequence[str],
    image_size: int,
    batch: int = 8,
    repeats: int = 5,
    device: torch.device | str = "cpu",
    num_classes: int = 2,
) -> list[dict]:
    """One row per architecture: parameters (with the published count), GFLOPs, latency, memory.

    Latency and memory are measured in fp32, memory in the column `train_mem_b{batch}_fp32_MB`;
    latency is the fastest of `repeats` passes, timed round-robin across `archs`
    (`interleaved_latency_ms`), at batch 1 and at `batch`.

    `params_M` counts torchvision's 1000-class ImageNet model, as the published table does;
    `params_course` counts the same network with the course's `num_classes` head, and is the
    model that FLOPs, latency and memory are measured on (randomly initialised: weights do not
    change the cost).
    """
    rows, models, memory = [], {}, {}
    for arch in archs:
        # Counting needs shapes only: on the meta device nothing is allocated or computed.
        with torch.device("meta"):
            shape_only = get_model(arch, weights=None)
        params = count_parameters(shape_only)
        shape_only.fc = nn.Linear(shape_only.fc.in_features, num_classes, device="meta")
        model = get_model(arch, weights=None, num_classes=num_classes).to(device)
        published = PUBLISHED_PARAMS_M.get(arch)
        rows.append(
            {
                "arch": arch,
                "params_M": params / 1e6,
                "published_M": published,
                "diff_M": None if published is None else round(params / 1e6 - published, 3),
                "params_course": count_parameters(model),
                "gflops": forward_gflops(shape_only, image_size),
            }
        )
        # Alone on the device while measured: a CUDA peak would count the other models' weights.
        memory[arch] = training_memory_mb(model, image_size, batch)
        models[arch] = model.cpu()
    models = {arch: model.to(device) for arch, model in models.items()}
    for size in (1, batch):
        latency = interleaved_latency_ms(models, image_size, size, repeats)
        for row in rows:
            row[f"latency_b{size}_ms"] = latency[row["arch"]]
    for row in rows:
        row[f"train_mem_b{batch}_fp32_MB"] = memory[row["arch"]]
    return rows
