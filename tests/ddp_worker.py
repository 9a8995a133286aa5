"""One process of the two-process runs in test_distributed.py (not a test module itself).

`python tests/ddp_worker.py SCENARIO OUT` with torchrun's variables (RANK, WORLD_SIZE,
LOCAL_RANK, MASTER_ADDR, MASTER_PORT) set by the test. Each process writes what it saw to
OUT/rank<R>.pt; the test compares the ranks with each other and with a single-process run.

- train: fit with DDP (digest of the weights after every optimizer step), the same run
  interrupted after its first epoch and resumed, a run without augmentation and a frozen-backbone
  run (each to compare with one process and the same global batch), progressive stages (a new
  DDP wrapper for each stage's trainable parameters), SyncBatchNorm on the CPU;
  what each process saw is saved, then rank 1 crashes on purpose (as in "crash").
- crash / hang: rank 1 raises, or stops answering, at its second step; rank 0 must end with a
  clear message (exit status 2, as the command line gives), not wait for ever.
"""

from __future__ import annotations

import hashlib
import sys
import time
from pathlib import Path

import torch
from torch.optim.optimizer import register_optimizer_step_post_hook

from medtl_helpers import config
from medtl_helpers.data.split import split_by_patient
from medtl_helpers.data.synthetic import make_synthetic
from medtl_helpers.errors import MedtlError
from medtl_helpers.models import build_model
from medtl_helpers.training import distributed, fit, progressive_stages

PER_RANK_BATCH = 8
QUICK = config.get_profile("quick")


def tiny_data():
    """96 synthetic X-rays at 32 px, split by patient: the test builds the same."""
    return split_by_patient(make_synthetic(96, size=32, seed=3), 0.25, seed=0)


def digest(tensors) -> str:
    return hashlib.sha1(b"".join(t.detach().cpu().numpy().tobytes() for t in tensors)).hexdigest()


class Steps:
    """After every optimizer step: a digest of the parameters it updated; optionally an action."""

    def __init__(self):
        self.digests: list[str] = []
        self.action = None  # called with the step number (1, 2, ...)
        self.keep_next: list[torch.Tensor] | None = None  # filled with the next step's weights
        register_optimizer_step_post_hook(self.after_step)

    def after_step(self, optimizer, args, kwargs) -> None:
        params = [p for group in optimizer.param_groups for p in group["params"]]
        self.digests.append(digest(params))
        if self.keep_next == []:
            self.keep_next += [p.detach().clone() for p in params]
        if self.action is not None:
            self.action(len(self.digests))


def train(model_seed=0, **kwargs):
    torch.manual_seed(model_seed)
    model = build_model("resnet18", pretrained="none", verbose=False)
    options = dict(profile=QUICK, batch_size=PER_RANK_BATCH, progress=False, seed=0, epochs=2)
    history = fit(model, *tiny_data(), **{**options, **kwargs})
    return model, history


def scenario_train(out: Path, rank: int, steps: Steps) -> dict:
    seen = {}
    model, history = train(out_dir=out / "full", progress=True)
    seen["step_digests"], seen["rows"] = list(steps.digests), history.rows
    seen["final"] = digest(model.state_dict().values())

    first = len(steps.digests)

    def interrupt(step: int) -> None:
        if step == first + 5:  # the first step of epoch 2: last.pt holds epoch 1
            raise KeyboardInterrupt

    steps.action = interrupt
    try:
        train(out_dir=out / "resumed")
    except KeyboardInterrupt:
        seen["interrupted"] = True
    steps.action = None
    model, history = train(out_dir=out / "resumed", resume=True)
    seen["resumed_final"], seen["resumed_rows"] = digest(model.state_dict().values()), history.rows
    steps.keep_next = []
    model, history = train(augment=False, amp="off", epochs=1)
    seen["plain_first_step"], seen["plain_rows"] = steps.keep_next, history.rows
    model, history = train(augment=False, amp="off", freeze="all")
    seen["head_state"], seen["head_rows"] = model.fc.state_dict(), history.rows
    model, history = train(stages=progressive_stages((1, 1, 1)), augment=False)
    seen["progressive"] = digest(model.state_dict().values()), [r["stage"] for r in history.rows]
    try:
        train(sync_batchnorm=True)
    except MedtlError as err:
        seen["sync_batchnorm_error"] = str(err)
    return seen


def scenario_failure(kind: str, rank: int, steps: Steps) -> None:
    first = len(steps.digests)

    def fail(step: int) -> None:
        if rank == 1 and step == first + 2:
            if kind == "crash":
                raise RuntimeError("rank 1 crashed on purpose (test_distributed)")
            time.sleep(600)  # stops answering; the test ends this process

    steps.action = fail
    started = time.perf_counter()
    try:
        train(epochs=1)
    except MedtlError as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        print(f"ended after {time.perf_counter() - started:.1f} s", file=sys.stderr, flush=True)
        raise SystemExit(2) from None


def main(scenario: str, out: Path) -> None:
    torch.set_num_threads(1)
    world = distributed.start(torch.device("cpu"))  # one group for all the fits below
    steps = Steps()
    try:
        if scenario == "train":
            seen = scenario_train(out, world.rank, steps)
            torch.save({"world_size": world.size, **seen}, out / f"rank{world.rank}.pt")
            world.barrier()
        scenario_failure("crash" if scenario == "train" else scenario, world.rank, steps)
    finally:
        world.close()


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
