"""The work inside one epoch: shuffled batches from the uint8 cache, one optimizer step each.

Batches are cut from the cached images (no DataLoader, no decoding), augmented on the device,
laid out channels_last and run under autocast where that helps. The loss is class-weighted so
the imbalance (about 3 PNEUMONIA images to 1 NORMAL) does not teach the model to say PNEUMONIA.
Validation is scored in fp32, as `predict_proba` and `evaluate` score later, so the threshold
saved with a checkpoint is one of the scores they will see. Under torchrun each process trains
on its slice of every global batch and scores a slice of the validation set (`distributed.py`);
alone, `world` changes nothing.
"""

from __future__ import annotations

from contextlib import nullcontext

import torch
from torch import nn

from medtl_helpers.config import precision_choice
from medtl_helpers.data.augment import BatchAugment, to_model_input
from medtl_helpers.data.records import ImageSet
from medtl_helpers.errors import MedtlError, in_terms
from medtl_helpers.metrics import run_batched
from medtl_helpers.models import train_mode
from medtl_helpers.progress import progress_bar
from medtl_helpers.training.distributed import World


def class_weights(labels: torch.Tensor, n_classes: int = 2) -> torch.Tensor:
    """w_c = N / (C * N_c) for C classes: each class counts equally in the loss, whatever its share.

    Every class gets the same total weight N_c * w_c = N / C, so the weights sum over the images
    to N, as many as there are (a balanced set gets weight 1 for every class).
    """
    counts = torch.bincount(labels, minlength=n_classes).clamp(min=1).float()
    return counts.sum() / (n_classes * counts)


def steps_per_epoch(n_images: int, batch_size: int) -> int:
    """Optimizer steps in one pass: full batches only, or one step for a set smaller than a batch.

    The last, partial batch is dropped. Each epoch cuts its batches from a fresh random order
    (`BatchTrainer.batches`), so what is dropped is a fresh random remainder each epoch, not the
    same images every time: over several epochs nearly every image is seen. Why drop it: BatchNorm
    in train mode needs more than one value per channel. A leftover batch of one image gives a
    BatchNorm2d H x W values per channel, so it fails only where a feature map is 1 x 1 (layer4 of
    a ResNet at 28 px), and it always fails a BatchNorm1d in a head (the course heads have none).
    A small leftover batch gives noisy batch statistics everywhere.
    """
    return n_images // batch_size if n_images > batch_size else 1


def out_of_memory(err: Exception, batch_size: int, image_size: int, where: str = "training"):
    """The error for a GPU out of memory, naming the batch size that applies where it happened.

    Training steps use `batch_size`; validation and frozen-feature extraction use
    `eval_batch_size`, so halving the training batch would not help there.
    """
    half = max(1, batch_size // 2)
    setting = "batch_size" if where == "training" else "eval_batch_size"
    return MedtlError(
        f"The GPU ran out of memory at batch size {batch_size}, {image_size} px ({where}). Use a "
        "smaller batch: "
        + in_terms(f"fit(..., {setting}={half})", f"--{setting.replace('_', '-')} {half}")
        + "; a smaller "
        + in_terms("image_size", "--image-size")
        + f" also helps. ({str(err)[:80]})"
    )


class BatchTrainer:
    """Trains `model` on `train` one epoch at a time and scores it on `val`."""

    def __init__(
        self,
        model: nn.Module,
        train: ImageSet,
        val: ImageSet,
        *,
        device: torch.device,
        batch_size: int,
        image_size: int,
        amp: str = "auto",
        channels_last: bool = True,
        weighted_loss: bool = True,
        augment: BatchAugment | None = None,
        eval_batch_size: int = 256,
        seed: int = 0,
        progress: bool = True,
        world: World | None = None,
    ):
        self.model, self.val, self.device = model, val, device
        self.module = model  # what a step runs: the model, or DDP around it (`distribute`)
        self.world = world or World(device=device)
        self.world.check_shares(len(train), len(val))
        self.batch_size, self.image_size = batch_size, image_size
        self.progress = progress and self.world.is_main  # bars and lines from rank 0 only
        self.eval_batch_size = eval_batch_size
        self.dtype, self.precision = precision_choice(device, amp)  # dtype None: fp32
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.dtype == torch.float16)
        self.memory = torch.channels_last if channels_last else torch.contiguous_format
        self.generator = torch.Generator().manual_seed(seed)  # the batch order: alike everywhere
        self.own_generator = self.generator
        if self.world.size > 1:  # each process augments (and drops out) with draws of its own
            self.own_generator = torch.Generator().manual_seed(self.world.process_seed(seed))
            torch.manual_seed(self.world.process_seed(seed))
        self.augment = augment
        if augment is not None and augment.generator is None:
            augment.generator = self.own_generator
        weights = class_weights(train.labels).to(device) if weighted_loss else None
        self.loss_fn = nn.CrossEntropyLoss(weight=weights)
        self.images = train.images.to(device) if device.type == "cuda" else train.images
        self.labels = train.labels.to(device)

    @property
    def global_batch(self) -> int:
        """Images per optimizer step, over all processes: batch_size x world size."""
        return self.batch_size * self.world.size

    def distribute(self) -> None:
        """DDP over the parameters this stage trains (one process: the model itself)."""
        self.module = self.world.wrap(self.model)

    def autocast(self):
        if self.dtype is None:
            return nullcontext()
        return torch.autocast(self.device.type, dtype=self.dtype)

    def step(self, optimizer, scheduler, inputs, labels, module: nn.Module | None = None):
        """One optimizer step; the loss stays on the device (a float() here would sync a GPU)."""
        try:
            with self.autocast():
                logits = (module or self.module)(inputs)
                loss = self.loss_fn(logits.float(), labels)
            if self.world.size > 1:  # DDP averages: weight each process by its share of the batch
                loss = loss * self.world.share(self.weight_sum(labels))
            optimizer.zero_grad(set_to_none=True)
            self.scaler.scale(loss).backward()
            self.scaler.step(optimizer)
            self.scaler.update()
            scheduler.step()
            return loss.detach()
        except torch.cuda.OutOfMemoryError as err:
            raise out_of_memory(err, self.batch_size, self.image_size) from err

    def weight_sum(self, labels: torch.Tensor) -> torch.Tensor:
        """What the class-weighted mean loss divides by: the labels' weights (or their count)."""
        weight = self.loss_fn.weight
        return labels.new_tensor(len(labels)).float() if weight is None else weight[labels].sum()

    def batches(self, n: int) -> list[torch.Tensor]:
        """A fresh random order of `n` items, cut into `steps_per_epoch` global batches; each
        process keeps its slice of each."""
        order = torch.randperm(n, generator=self.generator)
        size = min(self.global_batch, n)
        steps = range(steps_per_epoch(n, size))
        return [self.world.split(order[i * size : (i + 1) * size]) for i in steps]

    def train_epoch(self, optimizer, scheduler, desc: str) -> float:
        """One pass over the training images; returns the mean training loss."""
        train_mode(self.model)
        total, count = 0.0, 0
        for idx in progress_bar(
            self.batches(len(self.labels)), desc=desc, leave=False, disable=not self.progress
        ):
            x = self.images[idx.to(self.images.device)].to(self.device, non_blocking=True)
            if self.augment:
                x = self.augment(x, self.image_size)
            else:
                x = to_model_input(x, self.image_size)
            x = x.contiguous(memory_format=self.memory)
            loss = self.step(optimizer, scheduler, x, self.labels[idx.to(self.device)])
            total, count = total + loss * len(idx), count + len(idx)
        self.world.sync_buffers(self.model)
        return self.world.mean(float(total) / max(count, 1))

    def val_probabilities(self) -> torch.Tensor:
        """P(PNEUMONIA) for every validation image, in fp32."""

        def pneumonia(x: torch.Tensor) -> torch.Tensor:
            logits = self.model(x.contiguous(memory_format=self.memory))
            return torch.softmax(logits.float(), dim=1)[:, 1]

        size, batch = self.image_size, self.eval_batch_size
        images = self.val.images[slice(*self.world.bounds(len(self.val)))]
        try:
            chunks = run_batched(self.model, pneumonia, images, batch, self.device, size)
        except torch.cuda.OutOfMemoryError as err:
            raise out_of_memory(err, batch, size, "validation") from err
        return self.world.gather(torch.cat(chunks), len(self.val))

    def states(self, optimizer, scheduler) -> dict:
        """What resuming needs besides the weights (several processes: each one's generator)."""
        states = {
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "generator": self.generator.get_state(),
        }
        if self.world.size > 1:
            states["own_generators"] = self.world.states(self.own_generator.get_state())
        return states

    def load_generators(self, saved: dict) -> None:
        """The batch order (and each process's own draws) where the saved run left them."""
        self.generator.set_state(saved["generator"])
        if self.world.size > 1:
            self.own_generator.set_state(saved["own_generators"][self.world.rank])

    def load_states(self, optimizer, scheduler, saved: dict) -> None:
        optimizer.load_state_dict(saved["optimizer"])
        scheduler.load_state_dict(saved["scheduler"])
        self.scaler.load_state_dict(saved["scaler"])
