"""Checkers for the exercises of notebook 01 (residual blocks).

`check_basic_block` builds the student's block class for a few (in, out, stride) cases and
compares it with the course's `BasicBlock`: output shape, parameter count, parameter names
(torchvision's, so that reference weights can be copied in), the output itself with the same
weights, and outputs and gradients in train mode (nb01_block.py). A class whose __init__ and
forward are both a given block's (the notebook's ResidualBlock, the package's or torchvision's
BasicBlock) is refused, and so is a factory (a lambda, a function) that returns such a block:
there is nothing of the student's to check. The first difference is explained in words.
`check_bottleneck_params` checks a parameter count worked out by hand and names the usual slip
when the number matches one. On success each prints one sentence.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from medtl_helpers.course.checks.common import plain, plain_number, require_answer
from medtl_helpers.course.checks.nb01_block import (
    borrowed_from,
    check_training,
    fixed_width_hint,
    output_hint,
    param_hint,
    parameter_count,
    randomise_batchnorm,
    run_hint,
    shape_hint,
)
from medtl_helpers.models import BasicBlock, Bottleneck

# (in_channels, out_channels, stride): a stage transition as in ResNet-18's layer2, a block
# inside a stage, a stride-only change, which catches projections built only for new widths, a
# channel-only change, which catches projections built only for a stride, and another input width
# (layer3's transition), which catches convs built for 64 input channels instead of in_channels.
BLOCK_CASES = ((64, 128, 2), (64, 64, 1), (64, 64, 2), (64, 128, 1), (128, 256, 2))
INPUT_SIZE = 16
BOTTLENECK_CASE = (256, 64)  # Bottleneck(in_channels=256, width=64), expansion 4
_NOT_YOURS = (
    "__init__ and forward are not yours, so there is nothing of yours to check. Write the block: "
    "class MyBasicBlock(nn.Module) with its own __init__ (conv1, bn1, conv2, bn2, downsample) and "
    "forward."
)


def _check_names(call: str, block: nn.Module, ref: BasicBlock) -> None:
    """The names must be torchvision's, or the reference weights cannot be copied in."""
    ref_names, got_names = dict(ref.named_parameters()), dict(block.named_parameters())
    if ref_names.keys() == got_names.keys():  # then compare buffers (BN running statistics) too
        ref_names, got_names = ref.state_dict(), block.state_dict()
    missing = [name for name in ref_names if name not in got_names]
    extra = [name for name in got_names if name not in ref_names]
    if missing or extra:
        raise AssertionError(
            f"{call}: shapes and parameter counts are right, but the names differ from "
            f"torchvision's BasicBlock, so the checker cannot copy its weights into your block "
            f"and compare outputs. Expected: {', '.join(ref_names)}. Yours that differ: "
            f"{', '.join(extra) or 'none'}; missing: {', '.join(missing) or 'none'}. Name the "
            "layers conv1, bn1, conv2, bn2 and the projection downsample (an nn.Sequential of "
            "the 1x1 conv and its BatchNorm, or None)."
        )


def _check_case(block_class: Callable[..., nn.Module], c_in: int, c_out: int, stride: int) -> None:
    """Checks one configuration; raises AssertionError at the first difference."""
    call = f"{getattr(block_class, '__name__', 'block_class')}({c_in}, {c_out}, stride={stride})"
    try:
        block = block_class(c_in, c_out, stride)
    except Exception as err:
        raise AssertionError(
            f"{call} raised {type(err).__name__}: {err}. The class must take "
            "(in_channels, out_channels, stride=1)."
        ) from err
    borrowed = borrowed_from(type(block))  # a factory (lambda, function) returning a given block
    if borrowed:
        raise AssertionError(
            f"your MyBasicBlock builds {borrowed}: {call} returns one, whose {_NOT_YOURS}"
        )
    generator = torch.Generator().manual_seed(c_in + c_out + stride)
    x = torch.randn(2, c_in, INPUT_SIZE, INPUT_SIZE, generator=generator)
    expected = (2, c_out, INPUT_SIZE // stride, INPUT_SIZE // stride)
    try:
        out = block.eval()(x.clone())
    except RuntimeError as err:
        raise AssertionError(
            f"{call} failed on an input of shape {tuple(x.shape)}: {err}. The residual branch "
            f"should give {expected}; "
            + (fixed_width_hint(block, c_in, c_out) or run_hint(c_in, c_out, stride))
        ) from err
    plain(out, f"the output of {call}")
    if not isinstance(out, torch.Tensor):
        raise AssertionError(
            f"{call} returned a {type(out).__name__} for an input tensor; forward must return "
            "the block's output tensor."
        )
    if tuple(out.shape) != expected:
        raise AssertionError(
            f"{call}: your block returns shape {tuple(out.shape)}; expected {expected}: "
            + shape_hint(tuple(out.shape), expected, c_in, stride)
        )

    torch.manual_seed(0)
    ref = BasicBlock(c_in, c_out, stride)
    got_params, ref_params = parameter_count(block), parameter_count(ref)
    if got_params != ref_params:
        raise AssertionError(
            f"{call} has {got_params:,} parameters; expected {ref_params:,}: "
            + param_hint(block, ref, c_in, c_out, stride)
        )

    randomise_batchnorm(ref, generator)
    ref.eval()
    _check_names(call, block, ref)
    block.load_state_dict(ref.state_dict())
    with torch.no_grad():
        got, want = plain(block.eval()(x.clone()), f"the output of {call}"), ref(x.clone())
    if not torch.allclose(got, want, atol=1e-5):
        raise AssertionError(
            f"{call}: with the reference weights copied in, your output differs from "
            f"relu(F(x) + shortcut(x)) by up to {(got - want).abs().max().item():.3g}: "
            + output_hint(got, ref, x)
        )
    check_training(call, block, ref, x)


def check_basic_block(block_class: Callable[..., nn.Module]) -> None:
    """`block_class(in_channels, out_channels, stride)` must behave like `models.BasicBlock`."""
    require_answer(block_class, "your MyBasicBlock")
    borrowed = borrowed_from(block_class)
    if borrowed:
        raise AssertionError(f"your MyBasicBlock is {borrowed}: its {_NOT_YOURS}")
    for case in BLOCK_CASES:
        _check_case(block_class, *case)
    cases = ", ".join(f"{i}->{o} stride {s}" for i, o, s in BLOCK_CASES)
    print(
        f"Correct: your block matches the reference for {cases} (the checker's cases: shapes, "
        "parameter counts, outputs with the same weights, and gradients in train mode)."
    )


def _bottleneck_slips(c_in: int, width: int) -> dict[int, str]:
    """Answers that come from one typical slip, mapped to the explanation of that slip."""
    out = 4 * width
    bn = 2 * (width + width + out)
    right = parameter_count(Bottleneck(c_in, width))
    return {
        right - bn: (
            f"you left out the BatchNorm parameters: each BN has a weight and a bias per channel, "
            f"2 x ({width} + {width} + {out}) = {bn:,} in all"
        ),
        right + bn: (
            "you counted running_mean and running_var: they are buffers updated by statistics, "
            "not parameters the optimizer trains"
        ),
        right + 2 * width + out: (
            "the convs have no bias (bias=False), because the BatchNorm after each one has its own"
        ),
        right + c_in * out + 2 * out: (
            f"there is no projection here: the block maps {c_in} channels to {width} x 4 = {out} "
            "at stride 1, so the shortcut is the identity"
        ),
        right - 8 * width * width: (
            f"the middle conv is 3x3: its weight has {width} x {width} x 3 x 3 entries, not "
            f"{width} x {width}"
        ),
        right - (out - width) * width - 2 * (out - width): (
            f"the last 1x1 conv expands {width} channels to {width} x 4 = {out} (and its BN has "
            f"{out} channels)"
        ),
    }


def check_bottleneck_params(answer: object) -> None:
    """`answer` must be the number of trainable parameters of Bottleneck(256, 64)."""
    require_answer(answer, "your bottleneck_params")
    c_in, width = BOTTLENECK_CASE
    answer = plain_number(answer, "bottleneck_params")
    if type(answer) is float and answer.is_integer():
        answer = int(answer)
    if type(answer) is not int:
        raise AssertionError(
            f"your answer is {answer!r} ({type(answer).__name__}); expected a whole number of "
            "parameters, e.g. 12345"
        )
    right = parameter_count(Bottleneck(c_in, width))
    if answer == right:
        print(
            f"Correct: Bottleneck({c_in}, {width}) has {right:,} parameters "
            "(three convs without bias, three BatchNorms, identity shortcut)."
        )
        return
    slips = _bottleneck_slips(c_in, width)
    if answer in slips:
        raise AssertionError(f"your answer {answer:,} is not the count: {slips[answer]}.")
    raise AssertionError(
        f"your answer {answer:,} is off by {answer - right:+,}. Count each conv as "
        "C_in x C_out x k x k (no bias): 1x1 256->64, 3x3 64->64, 1x1 64->256; add 2 per channel "
        "for each BatchNorm; the shortcut here is the identity."
    )
