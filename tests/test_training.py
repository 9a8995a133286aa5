import json

import numpy as np
import pytest
import torch

from medtl_helpers import config
from medtl_helpers.config import amp_dtype, native_bf16
from medtl_helpers.data.split import split_by_patient
from medtl_helpers.data.synthetic import make_synthetic
from medtl_helpers.errors import MedtlError
from medtl_helpers.models import build_model
from medtl_helpers.training import class_weights, fit, steps
from medtl_helpers.training.checkpoints import load_checkpoint, read_checkpoint
from medtl_helpers.training.stages import Stage, progressive_stages

QUICK = config.get_profile("quick")


@pytest.fixture(scope="module")
def tiny():
    train, val = split_by_patient(make_synthetic(240, size=32, seed=3), 0.25, seed=0)
    return train, val


def small_model():
    torch.manual_seed(0)
    return build_model("resnet18", pretrained="none", verbose=False)


def run(tiny, **kwargs):
    options = dict(profile=QUICK, batch_size=32, progress=False, seed=0)
    options.update(kwargs)
    return fit(small_model() if "model" not in kwargs else options.pop("model"), *tiny, **options)


def test_class_weights_balance_the_classes():
    # 1 NORMAL and 3 PNEUMONIA: 4 / (2 * 1) = 2 and 4 / (2 * 3) = 0.667
    weights = class_weights(torch.tensor([0, 1, 1, 1]))
    assert torch.allclose(weights, torch.tensor([2.0, 2 / 3]))


def test_amp_choice_on_cpu(cpu_with):
    cpu_with("avx2", "fma")  # bf16 only emulated: fp32
    assert amp_dtype(torch.device("cpu")) is None
    assert amp_dtype(torch.device("cpu"), "bf16") == torch.bfloat16
    assert amp_dtype(torch.device("cpu"), "off") is None


@pytest.mark.parametrize(
    ("name", "major", "expected"),
    [("Tesla T4", 7, torch.float16), ("Tesla V100", 7, torch.float16), ("A100", 8, torch.bfloat16)],
)
def test_amp_on_gpus_uses_bf16_only_where_it_is_native(monkeypatch, name, major, expected):
    from types import SimpleNamespace

    from medtl_helpers.config import precision_label

    card = SimpleNamespace(name=name, major=major, minor=5 if major == 7 else 0)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device=None: card)
    monkeypatch.setattr(torch.version, "hip", None)
    # torch says True on a T4 too, because bf16 can be emulated there: the course must not ask it.
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    cuda = torch.device("cuda")
    assert native_bf16(cuda) is (major >= 8)
    assert amp_dtype(cuda) == expected
    assert amp_dtype(cuda, "off") is None
    label = "bf16 autocast" if major >= 8 else "fp16 autocast with gradient scaling"
    assert precision_label(cuda) == label


def test_fit_records_history_and_writes_loadable_checkpoints(tiny, tmp_path):
    history = run(tiny, epochs=2, out_dir=tmp_path)
    assert [r["epoch"] for r in history.rows] == [1, 2]
    assert {"train_loss", "val_loss", "val_auroc", "lr", "seconds", "images_per_s"} <= set(
        history.rows[0]
    )
    assert history.best_auroc == max(history.column("val_auroc"))
    assert 0.0 <= history.threshold <= 1.0
    model, meta = load_checkpoint(tmp_path / "best.pt")
    assert meta["arch"] == "resnet18" and meta["threshold"] == history.threshold
    assert meta["val_auroc"] == history.best_auroc and meta["data_source"] == "synthetic"
    assert meta["profile"] == "quick" and meta["image_size"] == 32
    last = read_checkpoint(tmp_path / "last.pt")
    assert last["training"]["position"] == [0, 2] and "optimizer" in last["training"]


def test_returned_model_holds_the_best_weights(tiny, tmp_path):
    model = small_model()
    run(tiny, model=model, epochs=2, out_dir=tmp_path)
    best = read_checkpoint(tmp_path / "best.pt")["state_dict"]
    assert all(torch.equal(best[k], v.cpu()) for k, v in model.state_dict().items())


def test_interrupt_keeps_best_and_resume_finishes_the_run(tiny, tmp_path, monkeypatch, capsys):
    calls = {"n": 0}
    original = steps.BatchTrainer.train_epoch

    def flaky(self, *args):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return original(self, *args)

    monkeypatch.setattr(steps.BatchTrainer, "train_epoch", flaky)
    with pytest.raises(KeyboardInterrupt):
        run(tiny, epochs=3, out_dir=tmp_path)
    assert "carry on with fit(..., resume=True)" in capsys.readouterr().out
    load_checkpoint(tmp_path / "best.pt")
    history = run(tiny, epochs=3, out_dir=tmp_path, resume=True)
    assert calls["n"] == 4  # epoch 1, the interrupted epoch 2, then epochs 2 and 3 again
    assert [r["epoch"] for r in history.rows] == [1, 2, 3]


def test_resume_refuses_a_run_with_other_settings(tiny, tmp_path):
    run(tiny, epochs=1, out_dir=tmp_path)
    with pytest.raises(MedtlError, match="other stages or settings"):
        run(tiny, epochs=2, lr=0.1, out_dir=tmp_path, resume=True)


def test_freeze_all_computes_backbone_features_once(tiny):
    model = small_model()
    calls = {"n": 0}
    model.layer1.register_forward_hook(lambda *_: calls.__setitem__("n", calls["n"] + 1))
    before = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("fc")}
    history = run(tiny, model=model, epochs=4, freeze="all", batch_size=16)
    assert len(history.rows) == 4
    assert calls["n"] == 2  # one batch of train features and one of val features, not 4 epochs
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_early_stopping_ends_a_stage_without_improvement(tiny):
    history = run(tiny, stages=[Stage("flat", 5, "none", lr=0.0, schedule="constant")], patience=2)
    assert len(history.rows) == 3  # epoch 1 sets the best; two epochs without improvement stop it


def test_progressive_stages_run_in_order(tiny):
    history = run(tiny, stages=progressive_stages((1, 1, 1), lr=1e-3))
    assert history.column("stage") == ["head", "top", "all"]
    # Each stage ends at the same point of its own schedule, so the head's learning rates at the
    # stage ends keep the ratio of the stages' peak rates (lr, lr/2, lr/4). A stage stepping an
    # old scheduler, or built with another rate, breaks the ratio.
    lrs = history.column("lr")
    assert (
        lrs[0] > 0
        and lrs[1] / lrs[0] == pytest.approx(0.5)
        and lrs[2] / lrs[0] == pytest.approx(0.25)
    )


def test_out_of_memory_suggests_a_smaller_batch(tiny, monkeypatch):
    model = small_model()

    def boom(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(model, "forward", boom)
    with pytest.raises(
        MedtlError, match=r"ran out of memory at batch size 32.*batch_size=16"
    ) as oom:
        run(tiny, model=model, epochs=1)
    assert "--batch-size" not in str(oom.value)  # a notebook is told fit's keyword, not a flag


def test_out_of_memory_on_the_command_line_names_the_flags():
    from medtl_helpers.errors import command_line
    from medtl_helpers.training.steps import out_of_memory

    with command_line():
        message = str(out_of_memory(RuntimeError("CUDA out of memory"), 64, 224))
    assert "--batch-size 32" in message and "--image-size" in message and "fit(" not in message


def test_cli_train_then_evaluate_writes_json(kermany_root, tmp_path, capsys):
    from medtl_helpers.course.cli import main

    out = tmp_path / "run"
    args = ["train", "--data", str(kermany_root), "--epochs", "1", "--image-size", "32"]
    assert main(args + ["--out", str(out), "--batch-size", "4"]) == 0
    report = tmp_path / "metrics.json"
    evaluate = ["evaluate", "--checkpoint", str(out / "best.pt"), "--data", str(kermany_root)]
    assert main(evaluate + ["--json", str(report), "--n-boot", "50"]) == 0
    values = json.loads(report.read_text())
    assert {"auroc", "accuracy", "sensitivity", "specificity", "threshold", "n"} <= set(values)
    assert values["n"] == 13 and values["resampled"] == "patients"
    printed = capsys.readouterr().out
    assert "auroc" in printed and "test: 13 images" in printed
    rows = {line.split()[0]: line.split()[1:] for line in printed.splitlines() if line.strip()}
    assert rows["metric"] == [] and rows["value"] == ["low", "high"]  # the table's header
    assert rows["sensitivity"][0] == f"{values['sensitivity']:.3f}"
    assert rows["n"] == ["13.000"] and rows["threshold"] == [f"{values['threshold']:.3f}"]
    assert "(95% bootstrap intervals, resampling patients)" in printed


def test_a_frozen_backbone_head_is_validated_in_eval_mode(tiny):
    from medtl_helpers.metrics import auroc, predict_proba

    torch.manual_seed(0)
    model = build_model("resnet18", pretrained="none", dropout=0.5, verbose=False)
    history = run(tiny, model=model, epochs=2, freeze="all", batch_size=16)
    # The returned model holds the best epoch's weights: scored in eval mode (no dropout), it
    # must give exactly the validation AUROC that picked it, and its threshold among its scores.
    probs = predict_proba(model, tiny[1].images, image_size=32)
    assert auroc(tiny[1].labels, probs) == pytest.approx(history.best_auroc, abs=1e-9)
    assert np.isclose(probs, history.threshold, rtol=0, atol=1e-6).any()


def test_only_two_class_models_are_built():
    with pytest.raises(ValueError, match="num_classes=3: the course's models are two-class"):
        build_model("resnet18", num_classes=3, pretrained="none", verbose=False)


def test_an_unknown_amp_setting_is_refused(tiny):
    with pytest.raises(ValueError, match="amp='fp32' is not understood.*'off' trains in fp32"):
        amp_dtype(torch.device("cpu"), "fp32")
    with pytest.raises(ValueError, match="amp='fp32'"):
        run(tiny, epochs=1, amp="fp32")


def test_a_diverged_model_stops_with_a_message(tiny, monkeypatch):
    nan = lambda self: torch.full((len(self.val),), float("nan"))  # noqa: E731
    monkeypatch.setattr(steps.BatchTrainer, "val_probabilities", nan)
    with pytest.raises(MedtlError, match=r"diverged.*NaN.*lr=0\.0001 instead of 0\.001.*amp='off'"):
        run(tiny, epochs=1)


def test_an_epoch_cap_shortens_every_stage_and_says_so(tiny, monkeypatch, capsys):
    monkeypatch.setenv("MEDTL_MAX_EPOCHS", "1")
    history = run(tiny, stages=progressive_stages((2, 2, 2), lr=1e-3), progress=True)
    assert history.column("stage") == ["head", "top", "all"]
    assert "MEDTL_MAX_EPOCHS=1: every stage trains at most 1 epoch(s)." in capsys.readouterr().out


def test_images_per_s_times_the_training_loop_alone(tiny, monkeypatch):
    # A fake clock: each training epoch takes 1 s, each validation pass 100 s.
    import importlib
    from types import SimpleNamespace

    clock = [0.0]

    def taking(seconds, method):
        def timed(self, *args, **kwargs):
            result = method(self, *args, **kwargs)
            clock[0] += seconds
            return result

        return timed

    trainer = steps.BatchTrainer
    monkeypatch.setattr(trainer, "train_epoch", taking(1.0, trainer.train_epoch))
    monkeypatch.setattr(trainer, "val_probabilities", taking(100.0, trainer.val_probabilities))
    fit_module = importlib.import_module("medtl_helpers.training.fit")
    monkeypatch.setattr(fit_module, "time", SimpleNamespace(perf_counter=lambda: clock[0]))
    history = run(tiny, epochs=1)
    trained = steps.steps_per_epoch(len(tiny[0]), 32) * 32
    assert history.rows[0]["seconds"] == pytest.approx(101.0)  # the whole epoch
    assert history.rows[0]["images_per_s"] == pytest.approx(trained / 1.0)  # training only
