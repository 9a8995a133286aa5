"""Frozen backbone, computed once: the fast path for `freeze="all"`.

When every backbone parameter is frozen, the backbone is a fixed function, so running it again
each epoch recomputes identical features. Here the pooled features of the training and validation
images are computed once (no augmentation, BatchNorm in eval mode, no autograd) and the head
trains on them; epochs then cost milliseconds instead of a full forward pass. Under torchrun each
process computes the features of its share of the images and every process gathers them all; the
head then trains with DDP like the whole model would.
`backbone_features` runs the same backbone in eval mode, in fp32, and returns numpy for a
scikit-learn classifier; `fit`'s cached training features use the run's mixed precision.
"""

from __future__ import annotations

from contextlib import nullcontext

import numpy as np
import torch
from torch import nn

from medtl_helpers.data.augment import to_model_input
from medtl_helpers.data.records import ImageSet
from medtl_helpers.metrics import run_batched
from medtl_helpers.models import eval_mode, group_of, split_backbone_head
from medtl_helpers.progress import progress_bar
from medtl_helpers.training.steps import out_of_memory


def backbone_is_frozen(model: nn.Module) -> bool:
    return all(
        not p.requires_grad for name, p in model.named_parameters() if group_of(name) != "head"
    )


@torch.no_grad()
def extract_features(
    backbone: nn.Module,
    data: ImageSet,
    trainer,
    desc: str = "features",
    mixed_precision: bool = True,
) -> torch.Tensor:
    """(N, C) float32 features on the trainer's device, in eval mode and without autograd.

    Batches of `trainer.eval_batch_size`. `mixed_precision=False` computes them in fp32 even
    where the trainer uses autocast, as for the validation features: the threshold chosen on them
    is then one of the scores that `predict_proba` (fp32) gives later.
    """
    backbone.eval()
    chunks, batch = [], trainer.eval_batch_size
    starts = range(0, len(data), batch)
    try:
        for start in progress_bar(starts, desc=desc, leave=False, disable=not trainer.progress):
            images = data.images[start : start + batch].to(trainer.device)
            x = to_model_input(images, trainer.image_size)
            with trainer.autocast() if mixed_precision else nullcontext():
                chunks.append(backbone(x.contiguous(memory_format=trainer.memory)).float())
    except torch.cuda.OutOfMemoryError as err:
        raise out_of_memory(err, batch, trainer.image_size, "feature extraction") from err
    return torch.cat(chunks)


def backbone_features(
    model: nn.Module,
    images: torch.Tensor,
    image_size: int | None = None,
    batch_size: int = 256,
) -> np.ndarray:
    """Pooled backbone features of uint8 (N, 1, H, W) images as float32 numpy of shape (N, C).

    For a classifier outside PyTorch (scikit-learn) on a frozen backbone. Eval mode, so BatchNorm
    uses its stored statistics and leaves them alone; inference mode, so no autograd graph is
    kept; flatten(1), so a batch of one stays (1, C). The modes of the model's modules are put
    back afterwards, as `metrics.predict_proba` does.
    """
    if len(images) == 0:
        raise ValueError("backbone_features got no images (an empty split?)")
    backbone, _ = split_backbone_head(model)
    chunks = run_batched(model, backbone, images, batch_size, image_size=image_size)
    return torch.cat(chunks).numpy()


class FrozenFeatures:
    """Training and validation features computed once; `train_epoch` trains only the head.

    It stands in for the `BatchTrainer` it is given (same `train_epoch` and `val_probabilities`),
    and uses that trainer's device, precision, batch order, optimizer step and processes.
    """

    def __init__(self, model: nn.Module, train: ImageSet, val: ImageSet, trainer):
        backbone, self.head = split_backbone_head(model)
        self.trainer, self.world, self.module = trainer, trainer.world, self.head
        self.train = self.features(backbone, train, desc="train features")
        self.val = self.features(backbone, val, desc="val features", mixed_precision=False)
        self.labels = train.labels.to(trainer.device)

    def features(self, backbone: nn.Module, data: ImageSet, **options) -> torch.Tensor:
        """Features of all of `data`; each process computes its share and gathers the rest."""
        part = data if self.world.size == 1 else data.subset(range(*self.world.bounds(len(data))))
        return self.world.gather(
            extract_features(backbone, part, self.trainer, **options), len(data)
        )

    def distribute(self) -> None:
        """DDP over the head, the only part that trains (one process: the head itself)."""
        self.module = self.world.wrap(self.head)

    def train_epoch(self, optimizer, scheduler, desc: str) -> float:
        self.head.train()
        total, count = 0.0, 0
        for idx in self.trainer.batches(len(self.labels)):
            idx = idx.to(self.labels.device)
            loss = self.trainer.step(
                optimizer, scheduler, self.train[idx], self.labels[idx], self.module
            )
            total, count = total + loss * len(idx), count + len(idx)
        return self.world.mean(float(total) / max(count, 1))

    def val_probabilities(self) -> torch.Tensor:
        """P(PNEUMONIA) of the validation features, with the head in eval mode (no dropout)."""
        share = self.val[slice(*self.world.bounds(len(self.val)))]
        with eval_mode(self.head), torch.inference_mode():
            probs = torch.softmax(self.head(share).float(), dim=1)[:, 1]
        return self.world.gather(probs, len(self.val)).cpu()
