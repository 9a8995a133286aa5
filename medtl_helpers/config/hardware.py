"""The machine: which device to use, what the processor can do, and which precision `fit` uses.

Mixed precision runs the convolutions in 16-bit floats and keeps the weights, the loss and the
optimizer in fp32. bf16 has fp32's range, so it needs nothing else; fp16 needs its gradients
scaled (`torch.amp.GradScaler`) so that small values do not underflow to zero. Either pays only
where the hardware computes it natively: emulated, it is slower than fp32.
"""

from __future__ import annotations

import os
import platform
import sys
from pathlib import Path

import torch

from medtl_helpers.errors import DeviceError, in_terms


def get_device(prefer: str | None = None) -> torch.device:
    """CUDA when present (or when asked for), else Apple MPS, else CPU."""
    if prefer is not None:
        try:
            device = torch.device(prefer)
        except RuntimeError as err:
            raise DeviceError(
                f"Unknown device {prefer!r}: use cpu, cuda, cuda:1 or mps (or leave it out to "
                "use the GPU when there is one)."
            ) from err
        if device.type == "cuda" and not torch.cuda.is_available():
            raise DeviceError(
                "CUDA was requested but torch sees no GPU: on Colab choose "
                "Runtime > Change runtime type > GPU, or use "
                + in_terms("device='cpu'.", "--device cpu.")
            )
        return device
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def on_colab() -> bool:
    return "google.colab" in sys.modules


def cpu_model() -> str:
    """The processor's model name ("AMD EPYC 7B13"), from /proc/cpuinfo on Linux."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name") and ":" in line:
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def hardware_name(device: torch.device | str | None = None) -> str:
    """The GPU's name and memory, or the CPU's name and core count (default: the course device)."""
    device = get_device() if device is None else torch.device(device)
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        return f"{props.name}, {props.total_memory / 2**30:.0f} GiB"
    return f"{cpu_model()}, {os.cpu_count()} cores"


def device_label(device: torch.device | str | None = None) -> str:
    """The device type with its hardware, as printed everywhere: "cpu (AMD EPYC, 2 cores)"."""
    device = get_device() if device is None else torch.device(device)
    return f"{device.type} ({hardware_name(device)})"


AMP_CHOICES = ("auto", "bf16", "fp16", "off")
# CPU flags (as /proc/cpuinfo names them) of native bf16 arithmetic, and how to say so.
NATIVE_BF16_FLAGS = {"amx_bf16": "AMX BF16", "avx512_bf16": "AVX-512 BF16"}


def cpu_flags() -> set[str]:
    """The processor's feature flags: /proc/cpuinfo on Linux, else what torch's cpuinfo reports."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags") and ":" in line:
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    probes = {
        "amx_bf16": "_is_amx_tile_supported",  # AMX (Sapphire Rapids on) always has bf16 tiles
        "avx512_bf16": "_is_avx512_bf16_supported",
        "avx512f": "_is_avx512_supported",
        "avx2": "_is_avx2_supported",
    }
    return {flag for flag, name in probes.items() if getattr(torch.cpu, name, lambda: False)()}


def native_bf16(device: torch.device) -> bool:
    """True on GPUs with bf16 tensor cores (NVIDIA compute capability 8.0+: A100, L4, H100; AMD).

    Not `torch.cuda.is_bf16_supported()`: by default it also says True where bf16 is only
    emulated, as on a T4 (7.5), which then runs slower than fp16.
    """
    if torch.version.hip:
        return True
    return torch.cuda.get_device_properties(device).major >= 8


def _cpu_choice() -> tuple[torch.dtype | None, str]:
    flags = cpu_flags()
    native = [name for flag, name in NATIVE_BF16_FLAGS.items() if flag in flags]
    # oneDNN must also have bf16 kernels for this CPU; alone it is no proof (it also says yes
    # on AVX-512 CPUs without BF16, where it emulates).
    if native and torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return torch.bfloat16, f"bf16 autocast: native {native[0]}"
    have = "AVX-512 without BF16" if "avx512f" in flags else "no AVX-512 BF16 or AMX"
    return None, f"fp32: this CPU emulates bf16 ({have}), which is slower than fp32"


def precision_choice(
    device: torch.device | str, amp: str = "auto"
) -> tuple[torch.dtype | None, str]:
    """(autocast dtype or None for fp32, the reason in words) for training on `device`.

    amp="auto": bf16 on GPUs and CPUs that compute it natively; fp16 with gradient scaling on
    older GPUs such as the T4; fp32 elsewhere. "bf16", "fp16" and "off" (fp32) force a choice.
    """
    if amp not in AMP_CHOICES:
        raise ValueError(
            f"amp={amp!r} is not understood: use one of {', '.join(AMP_CHOICES)} "
            "('off' trains in fp32)."
        )
    device = torch.device(device)
    if amp == "off":
        return None, "fp32: mixed precision turned off (amp='off')"
    if amp in ("bf16", "fp16"):
        dtype = torch.bfloat16 if amp == "bf16" else torch.float16
        return dtype, f"{_label(dtype)}: asked for (amp='{amp}')"
    if device.type == "cuda":
        if native_bf16(device):
            return torch.bfloat16, "bf16 autocast: the GPU has bf16 tensor cores"
        return torch.float16, f"{_label(torch.float16)}: this GPU would only emulate bf16"
    if device.type == "cpu":
        return _cpu_choice()
    return None, f"fp32: no mixed precision on {device.type}"


def _label(dtype: torch.dtype | None) -> str:
    if dtype == torch.bfloat16:
        return "bf16 autocast"
    if dtype == torch.float16:
        return "fp16 autocast with gradient scaling"
    return "fp32"


def amp_dtype(device: torch.device | str, amp: str = "auto") -> torch.dtype | None:
    """The autocast dtype `fit` uses on `device` (None: fp32); see `precision_choice`."""
    return precision_choice(device, amp)[0]


def precision_name(device: torch.device | str, amp: str = "auto") -> str:
    """The precision `fit` trains in, in one word for tables: "bf16", "fp16" or "fp32"."""
    dtype = amp_dtype(device, amp)
    return {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(dtype, "fp32")


def precision_label(device: torch.device | str, amp: str = "auto") -> str:
    """What `fit` computes in: "bf16 autocast", "fp16 autocast with gradient scaling" or "fp32"."""
    return _label(amp_dtype(device, amp))
