"""`fit`: the one training loop every notebook uses.

It trains from the uint8 tensor cache with batch augmentation on the device, mixed precision on
GPUs (bf16 where supported, else fp16 with gradient scaling), channels_last memory and a
class-weighted loss. After each epoch it scores validation AUROC, saves `best.pt` when that
improves and `last.pt` always (both atomically), so Ctrl-C or a crash loses at most one epoch and
`fit(..., resume=True)` carries on. Stages (see `stages.py`) give progressive fine-tuning with a
fresh optimizer and scheduler each. A stage that freezes the whole backbone computes its features
once and trains the head on them (`features.py`).
"""

from __future__ import annotations

import copy
import time
from contextlib import nullcontext
from pathlib import Path

import torch
from torch import nn
from tqdm.auto import tqdm

from medtl_helpers import config
from medtl_helpers.data.augment import BatchAugment, to_model_input
from medtl_helpers.data.records import ImageSet
from medtl_helpers.errors import MedtlError
from medtl_helpers.features import FrozenFeatures, backbone_is_frozen
from medtl_helpers.freezing import train_mode
from medtl_helpers.history import History
from medtl_helpers.inference import run_batched
from medtl_helpers.metrics import auroc, choose_threshold
from medtl_helpers.run_files import RunFolder
from medtl_helpers.stages import Stage, make_optimizer, make_scheduler


def native_bf16(device: torch.device) -> bool:
    """True on GPUs with bf16 tensor cores (NVIDIA compute capability 8.0+: A100, L4, H100; AMD).

    Not `torch.cuda.is_bf16_supported()`: by default it also says True where bf16 is only
    emulated, as on a T4 (7.5), which then runs slower than fp16.
    """
    if torch.version.hip:
        return True
    return torch.cuda.get_device_properties(device).major >= 8


def amp_dtype(device: torch.device, amp: str = "auto") -> torch.dtype | None:
    """bf16 on GPUs with native bf16, fp16 (with a GradScaler) on older GPUs such as the T4,
    none on CPU unless asked for."""
    if amp == "off" or (amp == "auto" and device.type != "cuda"):
        return None
    if amp == "bf16" or (device.type == "cuda" and native_bf16(device)):
        return torch.bfloat16
    return torch.float16


def class_weights(labels: torch.Tensor, n_classes: int = 2) -> torch.Tensor:
    """N / (classes * N_c): each class contributes equally to the loss despite the 1:3 imbalance."""
    counts = torch.bincount(labels, minlength=n_classes).clamp(min=1).float()
    return counts.sum() / (n_classes * counts)


def out_of_memory(err: Exception, batch_size: int, image_size: int) -> MedtlError:
    return MedtlError(
        f"The GPU ran out of memory at batch size {batch_size}, {image_size} px. Use a smaller "
        f"batch: fit(..., batch_size={max(1, batch_size // 2)}) or --batch-size "
        f"{max(1, batch_size // 2)}; a smaller --image-size also helps. ({str(err)[:80]})"
    )


class Trainer:
    """State of one training run; `fit` is the public entry point."""

    def __init__(
        self,
        model,
        train,
        val,
        stages,
        *,
        device,
        batch_size,
        image_size,
        amp,
        channels_last,
        weighted,
        augment,
        patience,
        out_dir,
        seed,
        meta,
        progress,
    ):
        self.model, self.train, self.val, self.stages = model, train, val, stages
        self.device, self.batch_size, self.image_size = device, batch_size, image_size
        self.dtype = amp_dtype(device, amp)
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.dtype == torch.float16)
        self.memory = torch.channels_last if channels_last else torch.contiguous_format
        self.generator = torch.Generator().manual_seed(seed)
        self.augment = augment
        if augment is not None and augment.generator is None:
            augment.generator = self.generator
        weights = class_weights(train.labels).to(device) if weighted else None
        self.loss_fn = nn.CrossEntropyLoss(weight=weights)
        self.patience, self.progress = patience, progress
        self.files = RunFolder(
            out_dir, {"image_size": image_size, "data_source": train.source, "seed": seed, **meta}
        )
        self.history = History()
        self.best_state: dict | None = None
        self.position = (0, 0)  # (stage index, epochs done in that stage)
        self.bad_epochs = 0
        on_gpu = device.type == "cuda"
        self.train_images = train.images.to(device) if on_gpu else train.images
        self.train_labels = train.labels.to(device)

    def autocast(self):
        if self.dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def step(self, optimizer, scheduler, inputs, labels, head=None) -> torch.Tensor:
        """One optimizer step; the loss stays on the device (a float() here would sync a GPU)."""
        try:
            with self.autocast():
                logits = (head or self.model)(inputs)
                loss = self.loss_fn(logits.float(), labels)
            optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(optimizer)
            self.scaler.update()
            scheduler.step()
            return loss.detach()
        except torch.cuda.OutOfMemoryError as err:
            raise out_of_memory(err, self.batch_size, self.image_size) from err

    def batches(self, n: int):
        order = torch.randperm(n, generator=self.generator)
        stop = n - n % self.batch_size if n > self.batch_size else n  # no BatchNorm batch of one
        return [order[i : i + self.batch_size] for i in range(0, stop, self.batch_size)]

    def train_epoch(self, optimizer, scheduler, desc: str) -> float:
        train_mode(self.model)
        total, count = 0.0, 0
        for idx in tqdm(
            self.batches(len(self.train)), desc=desc, leave=False, disable=not self.progress
        ):
            x = self.train_images[idx.to(self.train_images.device)].to(
                self.device, non_blocking=True
            )
            x = (
                self.augment(x, self.image_size)
                if self.augment
                else to_model_input(x, self.image_size)
            )
            loss = self.step(
                optimizer,
                scheduler,
                x.contiguous(memory_format=self.memory),
                self.train_labels[idx.to(self.device)],
            )
            total, count = total + loss * len(idx), count + len(idx)
        return float(total) / max(count, 1)

    def val_probabilities(self, features: FrozenFeatures | None) -> torch.Tensor:
        if features is not None:
            with torch.inference_mode():
                return torch.softmax(features.head(features.val).float(), dim=1)[:, 1].cpu()

        # fp32, as `metrics.predict_proba` and `evaluate` score later: the threshold saved with
        # the checkpoint is then one of the scores they see (autocast would round it differently).
        def pneumonia(x: torch.Tensor) -> torch.Tensor:
            logits = self.model(x.contiguous(memory_format=self.memory))
            return torch.softmax(logits.float(), dim=1)[:, 1]

        chunks = run_batched(
            self.model, pneumonia, self.val.images, 256, self.device, self.image_size
        )
        return torch.cat(chunks)

    def run_stage(self, index: int, stage: Stage, done: int, state: dict | None) -> None:
        optimizer = make_optimizer(self.model, stage)
        features = None
        if backbone_is_frozen(self.model):
            features = FrozenFeatures(self.model, self.train, self.val, self, self.batch_size)
        n = len(self.train)
        steps = n // self.batch_size if n > self.batch_size else 1  # as many as batches() gives
        scheduler = make_scheduler(optimizer, stage, steps)
        if state is not None:
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            self.scaler.load_state_dict(state["scaler"])
        self.bad_epochs = 0 if state is None else state["bad_epochs"]
        for epoch in range(done, stage.epochs):
            start = time.perf_counter()
            desc = f"{stage.name} {epoch + 1}/{stage.epochs}"
            if features is not None:
                loss = features.train_epoch(optimizer, scheduler, desc)
            else:
                loss = self.train_epoch(optimizer, scheduler, desc)
            seconds = time.perf_counter() - start
            self.position = (index, epoch + 1)
            stop = self.end_epoch(
                stage, loss, seconds, steps * self.batch_size, features, optimizer, scheduler
            )
            if stop:
                self.position = (index, stage.epochs)
                break

    def end_epoch(self, stage, loss, seconds, seen, features, optimizer, scheduler) -> bool:
        """Score validation, keep the best weights, write checkpoints; True means stop the stage."""
        probs = self.val_probabilities(features).double()
        y = self.val.labels
        val_loss = float(
            nn.functional.binary_cross_entropy(probs.clamp(1e-6, 1 - 1e-6), y.double())
        )
        score = auroc(y.numpy(), probs.numpy())
        row = self.history.add(
            stage=stage.name,
            train_loss=loss,
            val_loss=val_loss,
            val_auroc=score,
            lr=optimizer.param_groups[-1]["lr"],
            seconds=seconds,
            images_per_s=seen / max(seconds, 1e-9),
        )
        improved = score > self.history.best_auroc
        if improved:
            self.history.mark_best(row["epoch"], score, choose_threshold(y.numpy(), probs.numpy()))
            self.best_state = copy.deepcopy(self.model.state_dict())
            self.bad_epochs = 0
            self.files.save("best.pt", self.model, self.history)
        else:
            self.bad_epochs += 1
        if self.progress:
            print(self.history.line(row) + ("  *best" if improved else ""))
        self.files.save(
            "last.pt",
            self.model,
            self.history,
            {
                "optimizer": optimizer.state_dict(),
                "scheduler": scheduler.state_dict(),
                "scaler": self.scaler.state_dict(),
                "bad_epochs": self.bad_epochs,
                "position": list(self.position),
                "history": self.history.state(),
                "generator": self.generator.get_state(),
                "stages": [s.as_dict() for s in self.stages],
            },
        )
        return self.bad_epochs >= self.patience

    def run(self, resume: bool) -> History:
        state = None
        if resume:
            stages = [s.as_dict() for s in self.stages]
            state = self.files.restore(self.model, self.history, stages)
        if state is not None:
            self.generator.set_state(state["generator"])
            self.position = tuple(state["position"])
            self.best_state = state["best_state"]
        first, done = self.position
        try:
            for index in range(first, len(self.stages)):
                stage = self.stages[index]
                self.run_stage(
                    index,
                    stage,
                    done if index == first else 0,
                    state if index == first and done < stage.epochs else None,
                )
        except KeyboardInterrupt:
            where = self.files.describe_best()
            print(
                f"\nInterrupted after {len(self.history.rows)} epochs. The best model so far "
                f"(val AUROC {self.history.best_auroc:.3f}) is in {where}; resume with "
                "fit(..., resume=True) or --resume."
            )
            raise
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)
        return self.history


def fit(
    model: nn.Module,
    train: ImageSet,
    val: ImageSet,
    *,
    epochs: int | None = None,
    lr: float = 1e-3,
    freeze: str | list[str] = "none",
    stages: list[Stage] | None = None,
    profile: config.Profile | None = None,
    batch_size: int | None = None,
    image_size: int | None = None,
    device: torch.device | str | None = None,
    amp: str = "auto",
    channels_last: bool = True,
    weighted_loss: bool = True,
    augment: BatchAugment | None = None,
    patience: int = 3,
    out_dir: str | Path | None = None,
    resume: bool = False,
    seed: int = 0,
    progress: bool = True,
    **meta: object,
) -> History:
    """Train `model` on `train`, select by validation AUROC, and return the history.

    On return the model holds the best weights. With `out_dir`, `best.pt` and `last.pt` are
    written there. `stages` replaces (epochs, lr, freeze) with several phases. `augment=None`
    uses a default `BatchAugment`; pass `augment=False` to train without augmentation.
    """
    profile = profile or config.get_profile()
    device = config.get_device(str(device) if device is not None else None)
    stages = stages or [Stage("train", epochs or profile.epochs, freeze, lr)]
    if augment is None:
        augment = BatchAugment()
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # every batch has the same shape: tune once
    model.to(
        device, memory_format=torch.channels_last if channels_last else torch.contiguous_format
    )
    trainer = Trainer(
        model,
        train,
        val,
        stages,
        device=device,
        batch_size=batch_size or profile.batch_size,
        image_size=image_size or train.image_size,
        amp=amp,
        channels_last=channels_last,
        weighted=weighted_loss,
        augment=augment or None,
        patience=patience,
        out_dir=out_dir,
        seed=seed,
        meta={"profile": profile.name, **meta},
        progress=progress,
    )
    return trainer.run(resume)
