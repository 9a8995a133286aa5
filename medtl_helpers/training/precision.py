"""Which precision `fit` computes in: bf16 or fp16 autocast where it helps, fp32 elsewhere.

Mixed precision runs the convolutions in 16-bit floats and keeps the weights, the loss and the
optimizer in fp32. bf16 has fp32's range, so it needs nothing else; fp16 needs its gradients
scaled (`torch.amp.GradScaler`) so that small values do not underflow to zero.
"""

from __future__ import annotations

import torch

AMP_CHOICES = ("auto", "bf16", "fp16", "off")


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
    if amp not in AMP_CHOICES:
        raise ValueError(
            f"amp={amp!r} is not understood: use one of {', '.join(AMP_CHOICES)} "
            "('off' trains in fp32)."
        )
    if amp == "off" or (amp == "auto" and device.type != "cuda"):
        return None
    if amp == "bf16" or (device.type == "cuda" and native_bf16(device)):
        return torch.bfloat16
    return torch.float16


def precision_label(device: torch.device | str, amp: str = "auto") -> str:
    """What `fit` computes in on this device: "bf16 autocast", "fp16 autocast ...", or "fp32"."""
    dtype = amp_dtype(torch.device(device), amp)
    if dtype == torch.bfloat16:
        return "bf16 autocast"
    if dtype == torch.float16:
        return "fp16 autocast with gradient scaling"
    return "fp32"
