"""What else could make CPU training or the frozen feature pass faster? Each option, measured.

The course trains in fp32 with channels_last on the CPU (AMP only on CUDA). This script measures
the alternatives on synthetic input of the same shape, so that the choice rests on numbers from
the machine at hand rather than on folklore:

- train: one full step (forward, backward, AdamW) of the whole network, freeze none;
- features: the frozen backbone's forward pass in inference mode, as `freeze="all"` runs it once.

Rows marked `course` are what the package does; `ratio` is images/s against that row, and
`warmup_s` is the time of the first calls (oneDNN primitive creation, or compilation). The
`compile` rows (torch.compile, inductor) only run with `--compile`: they need a C++ compiler
and take a minute or more to warm up on two cores.

    python benchmarks/cpu_options.py [--arch resnet18] [--size 128] [--batch 32] [--compile]
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import statistics
import time
import warnings
from collections.abc import Callable, Iterator

import torch
from torch import nn

from medtl_helpers.config import device_label
from medtl_helpers.models import build_model, split_backbone_head

HEADER = "mode option arch size batch images_per_s warmup_s ratio"


@contextlib.contextmanager
def onednn(enabled: bool) -> Iterator[None]:
    before = torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = enabled
    try:
        yield
    finally:
        torch.backends.mkldnn.enabled = before


def compare(mode: str, candidates: list[tuple], args) -> list[dict]:
    """Images/s of each candidate (name, is_course, batch, step, oneDNN on), interleaved.

    Every candidate is warmed up first; then `rounds` rounds each time `steps` calls of every
    candidate in turn, and the median round counts. Interleaving matters on a shared machine,
    where the speed of the CPU drifts by a quarter within minutes: candidates timed one after
    the other would compare the drift, not the options.
    """
    warm, speeds = [], [[] for _ in candidates]
    for _, _, _, step, dnn in candidates:
        start = time.perf_counter()
        with onednn(dnn):
            for _ in range(args.warmup):
                step()
        warm.append(time.perf_counter() - start)
    for _ in range(args.rounds):
        for i, (_, _, batch, step, dnn) in enumerate(candidates):
            with onednn(dnn):
                start = time.perf_counter()
                for _ in range(args.steps):
                    step()
                speeds[i].append(args.steps * batch / (time.perf_counter() - start))
    return [
        row(mode, name, course, args, batch, statistics.median(speed), w)
        for (name, course, batch, _, _), speed, w in zip(candidates, speeds, warm, strict=True)
    ]


def train_step(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> Callable[[], None]:
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loss_fn = nn.CrossEntropyLoss()

    def step() -> None:
        optimizer.zero_grad(set_to_none=True)
        loss_fn(model(x), y).backward()
        optimizer.step()

    return step


def feature_step(backbone: nn.Module, x: torch.Tensor) -> Callable[[], torch.Tensor]:
    backbone.eval()

    def step() -> torch.Tensor:
        with torch.inference_mode():
            return backbone(x)

    return step


def fold_batchnorm(backbone: nn.Module) -> nn.Module:
    """Conv-BN pairs merged into one conv (valid in eval mode only), via torch.fx."""
    from torch.fx.experimental.optimization import fuse

    return fuse(copy.deepcopy(backbone).eval())


def jit_frozen(backbone: nn.Module) -> nn.Module:
    """TorchScript, frozen and optimised for inference (deprecated in torch 2.x, still there)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        scripted = torch.jit.script(copy.deepcopy(backbone).eval())
        return torch.jit.optimize_for_inference(torch.jit.freeze(scripted))


def compiled_frozen(backbone: nn.Module) -> Callable:
    import torch._inductor.config as inductor

    inductor.freezing = True  # fold the weights in as constants, as for deployment
    return torch.compile(copy.deepcopy(backbone).eval())


def inputs(batch: int, size: int, channels_last: bool, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, 3, size, size, generator=generator)
    y = torch.randint(0, 2, (batch,), generator=generator)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    return x.contiguous(memory_format=fmt), y


def fresh(arch: str, channels_last: bool) -> nn.Module:
    torch.manual_seed(0)
    model = build_model(arch, pretrained="none", verbose=False)
    return model.to(memory_format=torch.channels_last) if channels_last else model


def train_rows(args) -> list[dict]:
    """One training step per option: (name, is_course, batch, channels_last, oneDNN, compile)."""
    options = [
        ("channels_last", True, args.batch, True, True, False),
        ("contiguous", False, args.batch, False, True, False),
        (f"channels_last_batch{2 * args.batch}", False, 2 * args.batch, True, True, False),
        ("no_onednn", False, args.batch, True, False, False),
    ]
    if args.compile:
        options.append(("torch_compile", False, args.batch, True, True, True))
    candidates = []
    for name, course, batch, cl, dnn, comp in options:
        model = fresh(args.arch, cl)
        x, y = inputs(batch, args.size, cl)
        step = train_step(torch.compile(model) if comp else model, x, y)
        candidates.append((name, course, batch, step, dnn))
    return compare("train", candidates, args)


def feature_rows(args) -> list[dict]:
    backbone_cl, _ = split_backbone_head(fresh(args.arch, True))
    backbone, _ = split_backbone_head(fresh(args.arch, False))
    options = [
        ("channels_last", True, backbone_cl, True),
        ("contiguous", False, backbone, False),
        ("bn_folded_channels_last", False, fold_batchnorm(backbone_cl), True),
        ("torch_jit_freeze", False, jit_frozen(backbone), False),
    ]
    if args.compile:
        options.append(("torch_compile_freezing", False, compiled_frozen(backbone_cl), True))
    candidates = []
    for name, course, model, cl in options:
        x, _ = inputs(args.batch, args.size, cl)
        candidates.append((name, course, args.batch, feature_step(model, x), True))
    return compare("features", candidates, args)


def row(mode, option, course, args, batch, speed, warm) -> dict:
    return {
        "mode": mode,
        "option": f"{option}(course)" if course else option,
        "arch": args.arch,
        "size": args.size,
        "batch": batch,
        "images_per_s": speed,
        "warmup_s": warm,
    }


def with_ratios(rows: list[dict]) -> list[dict]:
    base = {r["mode"]: r["images_per_s"] for r in rows if r["option"].endswith("(course)")}
    return [{**r, "ratio": r["images_per_s"] / base[r["mode"]]} for r in rows]


def format_table(rows: list[dict]) -> str:
    lines = [HEADER]
    for r in rows:
        lines.append(
            f"{r['mode']} {r['option']} {r['arch']} {r['size']} {r['batch']} "
            f"{r['images_per_s']:.1f} {r['warmup_s']:.1f} {r['ratio']:.2f}"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="resnet18")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=2, help="untimed calls first")
    parser.add_argument("--steps", type=int, default=3, help="timed calls per round")
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds (median)")
    parser.add_argument("--modes", default="train,features")
    parser.add_argument("--compile", action="store_true", help="add the torch.compile rows")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    warnings.filterwarnings("ignore", category=UserWarning)
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    unknown = sorted(set(modes) - {"train", "features"})
    if unknown:
        raise SystemExit(f"--modes: unknown {unknown}; use train and/or features")
    print(f"# device: {device_label('cpu')}, {torch.get_num_threads()} torch threads")
    timing = f"{args.warmup} warm-up calls, then the median of {args.rounds} interleaved rounds"
    print(f"# torch {torch.__version__}; synthetic input; {timing} of {args.steps} calls")
    rows = []
    if "train" in modes:
        rows += train_rows(args)
    if "features" in modes:
        rows += feature_rows(args)
    rows = with_ratios(rows)
    print(format_table(rows))
    return rows


if __name__ == "__main__":
    main()
