"""`fit` under DistributedDataParallel: two CPU processes over gloo, started by the tests.

The two-process runs are in ddp_worker.py; each process is started with the variables torchrun
sets (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT). The last test starts the real
`torchrun … -m medtl_helpers train`. Tolerances, and why they are what they are:

- frozen backbone (the head trains on features computed once, no BatchNorm in train mode):
  2 processes x 8 images must match 1 process x 16 to 1e-6 (float rounding; measured 4e-9).
- whole model: each process normalises its 8 images with their own BatchNorm statistics, so one
  process with a batch of 16 computes other activations. Compared with one process that runs each
  global batch as two BatchNorm halves (what DDP computes), the weights after the first step
  agree to 2% of the update (measured 2e-4 with one thread, as in the workers, 4e-3 with two:
  another summation order, and AdamW divides each gradient by its own size, so elements whose
  gradient is at float-noise level move by different amounts). Against a plain batch of 16
  they differ by more than the whole update (1.29), and after an epoch the validation loss
  agrees within 0.05 (measured 0.008); random-init BatchNorm with 8 images per batch amplifies
  small differences step by step, so no tighter figure holds for a whole run.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from medtl_helpers.data.augment import to_model_input
from medtl_helpers.data.synthetic import write_synthetic_folder
from medtl_helpers.errors import MedtlError
from medtl_helpers.models import build_model
from medtl_helpers.training import (
    RunState,
    Stage,
    class_weights,
    load_checkpoint,
    make_optimizer,
    make_scheduler,
    steps_per_epoch,
)
from medtl_helpers.training.distributed import (
    World,
    lost_contact,
    plain_batchnorm,
    start,
    timeout_s,
    use_sync_batchnorm,
)

sys.path.insert(0, str(Path(__file__).parent))
import ddp_worker  # noqa: E402  (the processes' own code, to build the same runs here)

WORKER = Path(__file__).with_name("ddp_worker.py")
pytestmark = pytest.mark.filterwarnings("ignore:The validation split holds only")  # 25 images


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch(scenario: str, out: Path, timeout: str = "60") -> list[subprocess.Popen]:
    """Two worker processes with torchrun's variables; their output goes to out/rank<R>.out/err."""
    out.mkdir(exist_ok=True)
    env = {**os.environ, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port())}
    env.update(WORLD_SIZE="2", OMP_NUM_THREADS="1", MEDTL_DDP_TIMEOUT=timeout, MEDTL_OFFLINE="1")
    procs = []
    for rank in range(2):
        env.update(RANK=str(rank), LOCAL_RANK=str(rank))
        stdout, stderr = (open(out / f"rank{rank}.{kind}", "w") for kind in ("out", "err"))
        command = [sys.executable, str(WORKER), scenario, str(out)]
        procs.append(subprocess.Popen(command, env=dict(env), stdout=stdout, stderr=stderr))
    return procs


def wait(procs: list[subprocess.Popen], seconds: float) -> list[int | None]:
    """Exit statuses, None for a process still running after `seconds` (then stopped)."""
    deadline = time.monotonic() + seconds
    codes = []
    for proc in procs:
        try:
            codes.append(proc.wait(timeout=max(0.1, deadline - time.monotonic())))
        except subprocess.TimeoutExpired:
            codes.append(None)
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return codes


def untimed(rows: list[dict]) -> list[dict]:
    return [{k: v for k, v in row.items() if k not in ("seconds", "images_per_s")} for row in rows]


@pytest.fixture(scope="module")
def ddp(tmp_path_factory):
    out = tmp_path_factory.mktemp("ddp")
    codes = wait(launch("train", out), 300)
    errors = (out / "rank0.err").read_text()[-3000:]
    assert codes == [2, 1], errors  # the runs, then rank 1's crash on purpose
    ranks = [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(2)]
    return out, ranks


def test_both_processes_hold_the_same_weights_after_every_step(ddp):
    _, (rank0, rank1) = ddp
    assert rank0["world_size"] == 2
    assert len(rank0["step_digests"]) == 8  # 2 epochs x 4 steps of 2 x 8 images (71 in all)
    assert rank0["step_digests"] == rank1["step_digests"]
    assert len(set(rank0["step_digests"])) == 8  # every step changed the weights
    assert rank0["final"] == rank1["final"]  # parameters and BatchNorm statistics
    assert untimed(rank0["rows"]) == untimed(rank1["rows"])  # the same history and decisions
    assert rank0["progressive"] == rank1["progressive"]  # DDP wrapped anew for each stage
    assert rank0["progressive"][1] == ["head", "top", "all"]


def test_rank_0_alone_prints_and_writes_one_best_pt(ddp):
    out, (rank0, _) = ddp
    assert sorted(p.name for p in (out / "full").iterdir()) == ["best.pt", "last.pt"]
    printed = (out / "rank0.out").read_text()
    assert printed.count("epoch  1 [train]") == 1 and printed.count("epoch  2 [train]") == 1
    assert (out / "rank1.out").read_text() == ""
    assert "train 1/2" not in (out / "rank1.err").read_text()  # no progress bar either
    model, meta = load_checkpoint(out / "full" / "best.pt")  # a plain model, no "module."
    assert ddp_worker.digest(model.state_dict().values()) == rank0["final"]
    assert meta["best_epoch"] == max(rank0["rows"], key=lambda r: r["val_auroc"])["epoch"]


def test_resume_under_ddp_continues_exactly(ddp):
    _, ranks = ddp
    for seen in ranks:
        assert seen["interrupted"] is True
        assert seen["resumed_final"] == seen["final"]  # bit for bit, augmentation draws too
        assert untimed(seen["resumed_rows"]) == untimed(seen["rows"])


def test_resuming_with_another_number_of_processes_is_refused(ddp):
    out, _ = ddp
    with pytest.raises(MedtlError, match=r"world_size=2, but this run has world_size=1.*same"):
        ddp_worker.train(out_dir=out / "full", resume=True)


def test_frozen_backbone_matches_one_process_with_the_same_global_batch(ddp):
    _, (rank0, _) = ddp
    model, history = ddp_worker.train(augment=False, amp="off", freeze="all", batch_size=16)
    for key, value in model.fc.state_dict().items():
        assert torch.allclose(rank0["head_state"][key], value, rtol=0, atol=1e-6), key
    for ddp_row, row in zip(rank0["head_rows"], history.rows, strict=True):
        for key in ("train_loss", "val_loss", "val_auroc"):
            assert ddp_row[key] == pytest.approx(row[key], abs=1e-6), key


def first_step(train, halves: int) -> list[torch.Tensor]:
    """One process's first step on the first global batch of 16, its BatchNorm statistics
    taken over `halves` parts of it (2: what two DDP processes compute)."""
    torch.manual_seed(0)
    model = build_model("resnet18", pretrained="none", verbose=False)
    model.to(memory_format=torch.channels_last).train()
    stage = Stage("train", 1, "none", 1e-3)
    optimizer = make_optimizer(model, stage)
    scheduler = make_scheduler(optimizer, stage, steps_per_epoch(len(train), 16))
    weight = class_weights(train.labels)
    batch = torch.randperm(len(train), generator=torch.Generator().manual_seed(0))[:16]
    total = 0.0
    for part in batch.chunk(halves):
        x = to_model_input(train.images[part], 32).contiguous(memory_format=torch.channels_last)
        total = total + F.cross_entropy(model(x), train.labels[part], weight, reduction="sum")
    (total / weight[train.labels[batch]].sum()).backward()
    optimizer.step()
    scheduler.step()
    return [p.detach() for group in optimizer.param_groups for p in group["params"]]


def test_whole_model_matches_one_process_that_splits_batchnorm_as_ddp_does(ddp):
    _, (rank0, _) = ddp
    train, _ = ddp_worker.tiny_data()
    torch.manual_seed(0)
    init = [p.detach() for p in build_model("resnet18", pretrained="none").parameters()]

    def difference(params) -> float:
        """|DDP - params| over |params - initial weights|: relative to the step itself."""
        gap = sum(((a - b) ** 2).sum() for a, b in zip(rank0["plain_first_step"], params))
        step = sum(((a - b) ** 2).sum() for a, b in zip(params, init))
        return float((gap / step) ** 0.5)

    assert difference(first_step(train, halves=2)) < 0.02
    assert difference(first_step(train, halves=1)) > 0.5  # BatchNorm over 16: another step


def test_whole_model_after_an_epoch_is_close_to_one_process_with_a_batch_of_16(ddp):
    _, (rank0, _) = ddp
    _, history = ddp_worker.train(augment=False, amp="off", epochs=1, batch_size=16)
    assert rank0["plain_rows"][0]["val_loss"] == pytest.approx(
        history.rows[0]["val_loss"], abs=0.05
    )


def test_sync_batchnorm_on_the_cpu_is_refused_in_words(ddp):
    _, (rank0, rank1) = ddp
    assert rank0["sync_batchnorm_error"].startswith("SyncBatchNorm runs on GPUs only")
    assert "--sync-batchnorm" in rank1["sync_batchnorm_error"]


def test_a_crashed_process_ends_the_run_at_once_with_a_clear_message(ddp):
    out, _ = ddp  # the two-process run ended with rank 1 raising at its second step
    errors = (out / "rank0.err").read_text()
    assert "error: Process 0 of 2 lost contact with the others ([" in errors
    assert "Connection" in errors and "--resume" in errors
    assert float(errors.split("ended after ")[1].split(" s")[0]) < 30  # not the 60 s timeout
    assert "rank 1 crashed on purpose" in (out / "rank1.err").read_text()


def test_a_process_that_stops_answering_ends_the_run_after_the_timeout(tmp_path):
    started = time.monotonic()
    procs = launch("hang", tmp_path, timeout="8")  # rank 1 sleeps at its second step
    code = wait(procs[:1], 120)[0]
    wait(procs[1:], 0)  # the sleeping process is stopped here
    errors = (tmp_path / "rank0.err").read_text()
    assert code == 2, errors[-2000:]
    assert "error: Process 0 of 2 lost contact with the others" in errors
    # which collective times out first depends on the machine's load: gloo says it either way
    assert "Timed out waiting" in errors or "Application timeout caused pair closure" in errors
    assert "after 8 s (MEDTL_DDP_TIMEOUT)" in errors
    assert 8 <= float(errors.split("ended after ")[1].split(" s")[0]) < 30
    assert time.monotonic() - started < 110


def test_torchrun_trains_with_the_same_command(tmp_path):
    data = write_synthetic_folder(tmp_path / "xray", 64, 4, size=32)
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += ["--nproc-per-node", "2", "-m", "medtl_helpers", "train", "--data", str(data)]
    command += ["--epochs", "1", "--image-size", "32", "--batch-size", "8", "--pretrained"]
    command += ["none", "--out", str(tmp_path / "run")]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MEDTL_OFFLINE": "1"}
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("best val AUROC") == 1  # rank 0 speaks for both
    assert done.stdout.count("epoch  1 [train]") == 1
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["best.pt", "last.pt"]
    _, meta = load_checkpoint(tmp_path / "run" / "best.pt")
    assert meta["image_size"] == 32


def test_one_process_needs_no_process_group_and_changes_nothing(monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    world = start(torch.device("cpu"))
    assert (world.rank, world.size, world.is_main) == (0, 1, True)
    assert not torch.distributed.is_initialized()
    batch, module = torch.arange(10), nn.Linear(2, 2)
    assert world.split(batch) is batch and world.gather(batch, 10) is batch
    assert world.wrap(module) is module and world.mean(0.25) == 0.25
    assert float(world.share(torch.tensor(3.0))) == 1.0


def test_shares_cover_every_item_once_and_differ_by_at_most_one():
    worlds = [World(rank=r, size=3) for r in range(3)]
    assert [w.bounds(10) for w in worlds] == [(0, 3), (3, 6), (6, 10)]
    batch = torch.arange(10, 20)
    assert torch.cat([w.split(batch) for w in worlds]).tolist() == list(range(10, 20))
    seeds = {w.process_seed(0) for w in worlds} | {worlds[0].process_seed(1)}
    assert len(seeds) == 4  # a seed of each process's own, and another for another run seed


def test_too_little_data_for_the_processes_is_said(tmp_path):
    with pytest.raises(MedtlError, match="3 training and 1 validation images are too few for 2"):
        World(size=2).check_shares(3, 1)
    World(size=2).check_shares(4, 2)


def test_a_run_state_that_does_not_write_leaves_the_folder_empty(tmp_path):
    model = build_model("resnet18", pretrained="none", verbose=False)
    meta = dict(image_size=32, data_source="synthetic", profile="quick", seed=0)
    run = RunState(tmp_path, [Stage()], meta, {}, writes=False)
    run.best_is_new = True
    run.save(model, (0, 1), {})
    assert list(tmp_path.iterdir()) == []


def test_the_timeout_is_read_in_seconds(monkeypatch):
    monkeypatch.setenv("MEDTL_DDP_TIMEOUT", "7.5")
    assert timeout_s() == 7.5
    monkeypatch.setenv("MEDTL_DDP_TIMEOUT", "soon")
    with pytest.raises(MedtlError, match="MEDTL_DDP_TIMEOUT='soon' is not a number of seconds"):
        timeout_s()
    monkeypatch.delenv("MEDTL_DDP_TIMEOUT")
    assert timeout_s() == 600


def test_only_a_failed_collective_is_called_lost_contact():
    gloo = RuntimeError("[../third_party/gloo/transport/tcp/pair.cc:534] Connection closed by peer")
    message = str(lost_contact(gloo, World(rank=1, size=4)))
    assert message.startswith("Process 1 of 4 lost contact with the others ([../third_party/gloo")
    assert "after 600 s (MEDTL_DDP_TIMEOUT)" in message and "--resume" in message
    assert (
        lost_contact(RuntimeError("mat1 and mat2 shapes cannot be multiplied"), World(1, 2)) is None
    )
    assert lost_contact(gloo, World()) is None
    closed = RuntimeError("Application timeout caused pair closure")  # the broadcast's timeout
    assert str(lost_contact(closed, World(0, 2))).startswith("Process 0 of 2 lost contact")


def test_sync_batchnorm_comes_off_again_with_the_same_weights(capsys):
    model = build_model("resnet18", pretrained="none", verbose=False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    assert use_sync_batchnorm(model, World()) is None
    assert "a single process has nothing to synchronise" in capsys.readouterr().out
    with pytest.raises(MedtlError, match="SyncBatchNorm runs on GPUs only"):
        use_sync_batchnorm(model, World(size=2))
    kinds = {n: type(m) for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d)}
    bn1_weight = model.bn1.weight
    nn.SyncBatchNorm.convert_sync_batchnorm(model)
    assert isinstance(model.layer1[0].bn2, nn.SyncBatchNorm)
    plain_batchnorm(model, kinds)
    assert {type(m) for n, m in model.named_modules() if n in kinds} == {nn.BatchNorm2d}
    assert model.bn1.weight is bn1_weight  # the optimizer's parameters stay the model's
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
