"""The comparisons behind `nb01.check_basic_block`, each explaining a difference in words.

Which slip gives this output shape, output or gradient; what the student's modules say about a
wrong parameter count (which BatchNorm is missing or extra, which conv has a bias) or a block
that fails to run (a conv built for the wrong channel count); whether the class given is a block
the notebook or a package already wrote; and the train-mode step, where BatchNorm uses the batch's
statistics, a Dropout differs, and the gradient must flow back through the shortcut.
"""

from __future__ import annotations

import torch
from torch import nn

from medtl_helpers.course.checks.common import plain
from medtl_helpers.models import BasicBlock

_DROPOUT = (nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d, nn.AlphaDropout)


def parameter_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def randomise_batchnorm(module: nn.Module, generator: torch.Generator) -> None:
    """Fresh BN is the identity in eval mode, which would hide a missing or misplaced BN."""
    for bn in module.modules():
        if isinstance(bn, nn.BatchNorm2d):
            n = bn.num_features
            bn.weight.data = torch.rand(n, generator=generator) + 0.5
            bn.bias.data = torch.randn(n, generator=generator) * 0.3
            bn.running_mean = torch.randn(n, generator=generator) * 0.3
            bn.running_var = torch.rand(n, generator=generator) + 0.5


def shape_hint(got: tuple, expected: tuple, c_in: int, stride: int) -> str:
    hints = []
    if got[1] != expected[1]:
        hints.append(
            "the block must output out_channels channels (conv1: in -> out, conv2: out -> out)"
            + (" and the shortcut must change the channel count too" if got[1] == c_in else "")
        )
    if got[2:] != expected[2:]:
        hints.append(
            f"the stride is not applied: conv1 needs stride={stride}, and the shortcut a 1x1 "
            f"conv with stride {stride}"
        )
    return "; ".join(hints) or "check the padding of the 3x3 convs (padding=1 keeps the size)"


_BN_PLACES = {
    "bn1": "the BatchNorm after conv1",
    "bn2": "the BatchNorm after conv2",
    "downsample.1": "the BatchNorm after the shortcut's 1x1 conv",
}


def _named(module: nn.Module, kind: type) -> list[str]:
    return [name for name, m in module.named_modules() if isinstance(m, kind)]


def _batchnorm_hint(block: nn.Module, ref: BasicBlock, skip: tuple[str, ...] = ()) -> str:
    """Which BatchNorm is missing or extra, read from the modules' names; those under a prefix
    in `skip` (a needless projection, already named) are left out."""
    got = [n for n in _named(block, nn.BatchNorm2d) if not n.startswith(skip)]
    want = _named(ref, nn.BatchNorm2d)
    if len(got) == len(want):
        return ""
    reference = ", ".join(f"{name} ({_BN_PLACES[name]})" for name in want)
    missing, extra = [n for n in want if n not in got], [n for n in got if n not in want]
    if len(got) < len(want) and not extra:
        return " and ".join(f"{name} ({_BN_PLACES[name]})" for name in missing) + (
            " is missing" if len(missing) == 1 else " are missing"
        )
    if len(got) > len(want) and not missing:
        after_addition = any(not n.startswith("downsample.") for n in extra)
        return (
            f"there is an extra BatchNorm, {', '.join(extra)}: the reference has only "
            f"{reference}" + ("; none follows the addition" if after_addition else "")
        )
    return (
        f"your BatchNorms are {', '.join(got) or 'none'}; the reference has {reference}: keep "
        "these names"
    )


def param_hint(block: nn.Module, ref: BasicBlock, c_in: int, c_out: int, stride: int) -> str:
    """Why `block` has another parameter count than `ref`, read from its modules."""
    hints = []
    biased = [
        n for n, m in block.named_modules() if isinstance(m, nn.Conv2d) and m.bias is not None
    ]
    if biased:
        hints.append(
            f"{', '.join(biased)} {'has a bias' if len(biased) == 1 else 'have biases'}: the "
            "reference's convs have none (bias=False), because BatchNorm has its own shift"
        )
    projections = [
        n for n, m in block.named_modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (1, 1)
    ]
    if ref.downsample is not None and not projections:
        hints.append(
            "your shortcut has no parameters, but the shape changes here: the shortcut must be a "
            f"1x1 conv ({c_in} -> {c_out}, stride {stride}) followed by BatchNorm"
        )
    skip = ()
    if ref.downsample is None and projections:
        hints.append(
            "your block has a projection although input and output shapes match: the shortcut "
            "should be the identity here (downsample = None)"
        )  # its BatchNorm is part of that projection, not an extra one after the addition
        skip = tuple(n.rsplit(".", 1)[0] + "." for n in projections if "." in n)
    hints.append(_batchnorm_hint(block, ref, skip))
    shapes = dict(ref.named_parameters())
    hints += [
        f"{name} has shape {tuple(p.shape)}, expected {tuple(shapes[name].shape)}"
        for name, p in block.named_parameters()
        if name in shapes and p.shape != shapes[name].shape
    ]
    return "; ".join(h for h in hints if h) or (
        "count conv1, bn1, conv2, bn2 and, only when the shape changes, the 1x1 conv + BN"
    )


def fixed_width_hint(block: nn.Module, c_in: int, c_out: int) -> str:
    """The convs built for the wrong channel count, if any: conv1 and downsample.0 read the
    block's input (in_channels), conv1 outputs out_channels, and conv2 reads that; a conv
    with another name is named when it fits neither width."""
    convs = {name: m for name, m in block.named_modules() if isinstance(m, nn.Conv2d)}
    gives = convs["conv1"].out_channels if "conv1" in convs else c_out
    hints = [] if gives == c_out else [
        f"conv1 outputs {gives} channels, but it must output out_channels ({c_out}), which "
        "conv2 reads: build conv1 with out_channels"
    ]  # fmt: skip
    reads = {"conv1": "in", "downsample.0": "in", "conv2": "out"}
    fixed = {}
    for name, m in convs.items():
        source = reads.get(name) or ("either" if m.in_channels not in (c_in, c_out) else None)
        if source and m.in_channels != {"in": c_in, "out": c_out}.get(source):
            fixed.setdefault((m.in_channels, source), []).append(name)
    given = {
        "in": f"this block receives {c_in}: build {{}} with in_channels",
        "out": (
            f"conv1 gives it {c_out}"
            if gives == c_out
            else f"conv1 should give it out_channels ({c_out})"
        )
        + ": build {} with out_channels",
        "either": f"this block has in_channels={c_in} and out_channels={c_out}: build {{}} from "
        "these",
    }
    for (width, source), names in fixed.items():
        variable = {c_in: "in_channels", c_out: "out_channels"}.get(width, "a fixed number")
        hints.append(
            f"{' and '.join(names)} {'is' if len(names) == 1 else 'are'} built for {width} input "
            "channels, but " + given[source].format("it" if len(names) == 1 else "them")
            + f", not {variable}"
        )  # fmt: skip
    return "; ".join(hints)


def output_hint(model_out: torch.Tensor, ref: BasicBlock, x: torch.Tensor) -> str:
    """Name the variant of the forward pass that the student's output matches, if any."""
    with torch.no_grad():
        residual = ref.bn2(ref.conv2(torch.relu(ref.bn1(ref.conv1(x)))))
        shortcut = x if ref.downsample is None else ref.downsample(x)
    variants = {
        "the final ReLU (after the addition) is missing": residual + shortcut,
        "the shortcut is never added": torch.relu(residual),
        "the ReLU is applied to F(x) before the addition instead of after it": (
            torch.relu(residual) + shortcut
        ),
        "there is an extra ReLU on F(x) before the addition": torch.relu(
            torch.relu(residual) + shortcut
        ),
    }
    for hint, variant in variants.items():
        if torch.allclose(model_out, variant, atol=1e-5):
            return hint
    return (
        "follow conv1 -> bn1 -> relu -> conv2 -> bn2, add the shortcut, then relu; the stride "
        "belongs on conv1 and on the shortcut's 1x1 conv"
    )


def run_hint(c_in: int, c_out: int, stride: int) -> str:
    """What the shortcut needs in the case (c_in, c_out, stride) that failed to run."""
    if stride == 1:
        return (
            f"the channel count changes ({c_in} -> {c_out}) at stride 1, so the shortcut needs a "
            f"projection here too: a 1x1 conv to {c_out} channels (stride 1) plus BN. Project "
            "whenever stride != 1 or in_channels != out_channels."
        )
    if c_in == c_out:
        return (
            f"the stride alone changes the shape here: the shortcut needs a 1x1 conv with stride "
            f"{stride} (plus BN) although the channel count stays {c_in}."
        )
    return (
        f"when the stride or channel count changes, the shortcut must give that shape too: a 1x1 "
        f"conv with stride {stride} to {c_out} channels, plus BN."
    )


def borrowed_from(block_class: object) -> str:
    """Whose block `block_class` is when its __init__ and forward are both a given block's (the
    notebook's ResidualBlock, the package's or torchvision's BasicBlock); '' when not."""
    if not isinstance(block_class, type):
        return ""
    owners = {next((c for c in block_class.__mro__ if name in vars(c)), None) for name in
              ("__init__", "forward")}  # fmt: skip
    owner = owners.pop() if len(owners) == 1 else None
    if owner is BasicBlock:
        return "the package's BasicBlock (medtl_helpers.models)"
    if owner is not None and owner.__module__ == "torchvision.models.resnet":
        return f"torchvision's {owner.__qualname__}"
    if owner is not None and owner.__qualname__ == "ResidualBlock":
        return "the notebook's ResidualBlock, shown above the exercise"
    return ""


def _train_step(module: nn.Module, x: torch.Tensor, weight: torch.Tensor, detach=False):
    """Output, input gradient and parameter gradients of one train-mode step on `x`. With
    `detach` (the reference only), the shortcut is cut from the graph, as `.detach()` would."""
    module.train()
    leaf = x.clone().requires_grad_(True)
    inp = leaf * 1.0  # not a leaf, as inside a network: in-place changes to it then fail
    if detach:
        shortcut = inp if module.downsample is None else module.downsample(inp)
        residual = module.bn2(module.conv2(torch.relu(module.bn1(module.conv1(inp)))))
        out = torch.relu(residual + shortcut.detach())
    else:
        out = module(inp)
    (out * weight).sum().backward()
    return out.detach(), leaf.grad, {n: p.grad for n, p in module.named_parameters()}


def check_training(call: str, block: nn.Module, ref: BasicBlock, x: torch.Tensor) -> None:
    """In train mode BatchNorm uses the batch's statistics and gradients flow back: outputs and
    gradients must match the reference's too."""
    with torch.no_grad():
        shape = ref(x).shape
    weight = torch.randn(shape, generator=torch.Generator().manual_seed(1))
    want, want_input, want_params = _train_step(ref, x, weight)
    try:
        got, got_input, got_params = _train_step(block, x, weight)
    except RuntimeError as err:
        raise AssertionError(
            f"{call} in train mode: the backward pass failed ({str(err)[:120]}). Don't change "
            "the input or a tensor autograd saved in place (x += ..., shortcut += ...): write "
            "out = out + shortcut."
        ) from err
    if not torch.allclose(plain(got, f"the output of {call}"), want, atol=1e-5):
        dropouts = _named(block, _DROPOUT)
        raise AssertionError(
            f"{call}: in eval mode your output matches, but in train mode it differs by up to "
            f"{(got - want).abs().max().item():.3g}. "
            + (
                f"Your block has a Dropout ({', '.join(dropouts)}), which zeroes random units "
                "in train mode; the basic block has none: take it out."
                if dropouts
                else "In training BatchNorm normalises with the batch's own statistics: call "
                "the BatchNorm modules (self.bn1(out)), not their running_mean and running_var, "
                "and don't switch them to eval() in forward."
            )
        )
    if got_input is None or not torch.allclose(got_input, want_input, atol=1e-5, rtol=1e-4):
        detached = _train_step(ref, x, weight, detach=True)[1]
        cut = got_input is not None and torch.allclose(got_input, detached, atol=1e-5, rtol=1e-4)
        raise AssertionError(
            f"{call}: the outputs match, but in train mode the gradient that reaches the input "
            + (
                "misses the shortcut's share: the shortcut is detached from the graph. Don't "
                "call .detach() on it or compute it under torch.no_grad(): the shortcut passes "
                "the gradient wherever the final ReLU is active, beside the gradient through F."
                if cut
                else "differs from the reference's: is part of forward computed under "
                "torch.no_grad(), or from .detach()ed or .data tensors?"
            )
            + "".join(f" {n} gets no gradient." for n in want_params if got_params.get(n) is None)
        )
    for name, grad in want_params.items():
        if got_params.get(name) is None or not torch.allclose(
            got_params[name], grad, atol=1e-5, rtol=1e-4
        ):
            raise AssertionError(
                f"{call}: the outputs match, but in train mode {name} gets "
                f"{'no gradient' if got_params.get(name) is None else 'another gradient'}: "
                "is that layer used under torch.no_grad(), or through .detach() or .data?"
            )
