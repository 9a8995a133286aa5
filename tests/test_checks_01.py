"""The notebook 01 checkers accept the reference answers and explain typical wrong ones."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from medtl_helpers.course.checks import TODO, check_basic_block, check_bottleneck_params
from medtl_helpers.models import BasicBlock, Bottleneck

ROOT = Path(__file__).resolve().parents[1]


class SolutionBlock(nn.Module):
    """The notebook's reference solution: projection whenever the shape changes."""

    def __init__(self, in_channels, out_channels, stride=1, bias=False, final_relu=True):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=bias)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=bias)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.downsample = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )
        self.final_relu = final_relu

    def forward(self, x):
        shortcut = x if self.downsample is None else self.downsample(x)
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out)) + shortcut
        return torch.relu(out) if self.final_relu else out


def test_basic_block_accepts_the_reference(capsys):
    check_basic_block(SolutionBlock)
    printed = capsys.readouterr().out
    assert printed.startswith("Correct: your block matches the reference for 64->128 stride 2,")
    assert "64->128 stride 1, 128->256 stride 2 (the checker's cases" in printed
    assert "train mode" in printed


def notebook_class(source: str, name: str) -> type:
    """A class made by a notebook cell (module __main__), from `source`."""
    namespace = {"__name__": "__main__", "nn": nn, "torch": torch, "F": F}
    exec(source, namespace)
    return namespace[name]


def residual_block_source() -> str:
    """The notebook's ResidualBlock cell: the right block, shown before the exercise."""
    notebook = nbformat.read(ROOT / "notebooks" / "01_residual_blocks.ipynb", as_version=4)
    return next(c.source for c in notebook.cells if c.source.startswith("class ResidualBlock("))


def test_basic_block_refuses_a_block_it_was_given():
    # ResidualBlock is the notebook's own, right block: `MyBasicBlock = ResidualBlock` passed
    source = residual_block_source()
    residual = notebook_class(source, "ResidualBlock")
    unchanged = notebook_class(
        source + "\n\nclass MyBasicBlock(ResidualBlock):\n    pass\n", "MyBasicBlock"
    )
    for given, whose in [
        (residual, "the notebook's ResidualBlock"),
        (unchanged, "the notebook's ResidualBlock"),
        (BasicBlock, "the package's BasicBlock"),
    ]:
        with pytest.raises(AssertionError) as err:
            check_basic_block(given)
        assert str(err.value).startswith(f"your MyBasicBlock is {whose}")
        assert "its __init__ and forward are not yours" in str(err.value)
        assert "class MyBasicBlock(nn.Module) with its own __init__" in str(err.value)


def test_basic_block_refuses_a_factory_that_returns_a_given_block():
    # a lambda or function is not a class, so the class test alone let these through
    from torchvision.models.resnet import BasicBlock as TorchvisionBlock

    residual = notebook_class(residual_block_source(), "ResidualBlock")

    def torchvision_block(in_channels, out_channels, stride=1):
        return TorchvisionBlock(in_channels, out_channels, stride)

    for factory, whose in [
        (lambda i, o, s=1: BasicBlock(i, o, s), "the package's BasicBlock"),
        (lambda i, o, s=1: residual(i, o, s), "the notebook's ResidualBlock"),
        (torchvision_block, "torchvision's BasicBlock"),
    ]:
        with pytest.raises(AssertionError) as err:
            check_basic_block(factory)
        message = str(err.value)
        assert message.startswith(f"your MyBasicBlock builds {whose}")
        assert (
            "(64, 128, stride=2) returns one, whose __init__ and forward are not yours" in message
        )
        assert "class MyBasicBlock(nn.Module) with its own __init__" in message


def test_basic_block_checks_a_subclass_with_a_method_of_its_own(capsys):
    fixed = residual_block_source() + (
        "\n\nclass MyBasicBlock(ResidualBlock):\n"
        "    def forward(self, x):\n"
        "        shortcut = x if self.downsample is None else self.downsample(x)\n"
        "        out = torch.relu(self.bn1(self.conv1(x)))\n"
        "        return torch.relu(self.bn2(self.conv2(out)) + shortcut)\n"
    )
    check_basic_block(notebook_class(fixed, "MyBasicBlock"))
    assert "Correct: your block matches the reference" in capsys.readouterr().out


def test_basic_block_with_other_names_fails_and_lists_torchvisions_names():
    class Renamed(nn.Module):
        """ReLU before the addition, no final ReLU, and its own names: outputs differ."""

        def __init__(self, in_channels, out_channels, stride=1):
            super().__init__()
            self.body = SolutionBlock(in_channels, out_channels, stride)
            self.shortcut = self.body.downsample
            self.body.downsample = None

        def forward(self, x):
            b = self.body
            residual = torch.relu(b.bn2(b.conv2(torch.relu(b.bn1(b.conv1(x))))))
            return residual + (x if self.shortcut is None else self.shortcut(x))

    with pytest.raises(AssertionError) as err:
        check_basic_block(Renamed)
    message = str(err.value)
    assert message.startswith("Renamed(64, 128, stride=2): shapes and parameter counts are right")
    assert "Expected: conv1.weight, bn1.weight, bn1.bias, conv2.weight," in message
    assert "downsample.0.weight, downsample.1.weight, downsample.1.bias." in message
    assert "Yours that differ: body.conv1.weight, body.bn1.weight," in message
    assert "shortcut.0.weight" in message and "missing: conv1.weight," in message


def test_basic_block_with_other_buffer_names_fails():
    class NoRunningStats(SolutionBlock):
        def __init__(self, in_channels, out_channels, stride=1):
            super().__init__(in_channels, out_channels, stride)
            self.bn2 = nn.BatchNorm2d(out_channels, track_running_stats=False)

    with pytest.raises(AssertionError, match=r"missing: bn2\.running_mean, bn2\.running_var"):
        check_basic_block(NoRunningStats)


def test_basic_block_accepts_the_notebooks_solution(capsys):
    notebook = nbformat.read(ROOT / "notebooks" / "01_residual_blocks.ipynb", as_version=4)
    cells = [c for c in notebook.cells if "solution" in c.metadata.get("tags", [])]
    cell = next(c for c in cells if "class MyBasicBlock" in c.source)
    namespace = {"nn": nn, "F": F, "torch": torch}
    exec(cell.source, namespace)
    check_basic_block(namespace["MyBasicBlock"])
    assert "Correct: your block matches the reference" in capsys.readouterr().out


def test_basic_block_that_ignores_out_channels_and_stride():
    class Ignores(SolutionBlock):
        def __init__(self, in_channels, out_channels, stride=1):
            super().__init__(in_channels, in_channels, 1)

    with pytest.raises(AssertionError) as err:
        check_basic_block(Ignores)
    message = str(err.value)
    assert "your block returns shape (2, 64, 16, 16); expected (2, 128, 8, 8)" in message
    assert "the stride is not applied" in message and "out_channels channels" in message


def test_basic_block_with_identity_shortcut_only():
    class IdentityOnly(SolutionBlock):
        def __init__(self, in_channels, out_channels, stride=1):
            super().__init__(in_channels, out_channels, stride)
            self.downsample = None

    with pytest.raises(AssertionError, match=r"failed on an input of shape \(2, 64, 16, 16\)"):
        check_basic_block(IdentityOnly)


def test_basic_block_with_projection_only_for_new_widths():
    class ChannelsOnly(SolutionBlock):
        def __init__(self, in_channels, out_channels, stride=1):
            super().__init__(in_channels, out_channels, stride)
            if in_channels == out_channels:
                self.downsample = None

    with pytest.raises(
        AssertionError, match=r"\(64, 64, stride=2\) failed.*1x1 conv with stride 2"
    ):
        check_basic_block(ChannelsOnly)


def test_basic_block_with_projection_only_for_a_stride():
    class StrideOnly(SolutionBlock):
        def __init__(self, in_channels, out_channels, stride=1):
            super().__init__(in_channels, out_channels, stride)
            if stride == 1:
                self.downsample = None

    with pytest.raises(AssertionError) as err:
        check_basic_block(StrideOnly)
    message = str(err.value)
    assert message.startswith("StrideOnly(64, 128, stride=1) failed on an input of shape")
    assert "the channel count changes (64 -> 128) at stride 1, so the shortcut needs" in message
    assert "Project whenever stride != 1 or in_channels != out_channels." in message


class DetachedShortcut(SolutionBlock):
    def forward(self, x):
        shortcut = (x if self.downsample is None else self.downsample(x)).detach()
        out = torch.relu(self.bn1(self.conv1(x)))
        return torch.relu(self.bn2(self.conv2(out)) + shortcut)


class AddsIntoItsInput(SolutionBlock):
    def forward(self, x):
        out = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        shortcut = x if self.downsample is None else self.downsample(x)
        shortcut += out  # with the identity shortcut, this changes x itself
        return torch.relu(shortcut)


class RunningStatisticsOnly(SolutionBlock):
    """BatchNorm written out with the running statistics: right in eval mode only."""

    def forward(self, x):
        def bn(layer, t):
            return F.batch_norm(
                t, layer.running_mean, layer.running_var, layer.weight, layer.bias, False
            )

        shortcut = x if self.downsample is None else bn(self.downsample[1], self.downsample[0](x))
        out = torch.relu(bn(self.bn1, self.conv1(x)))
        return torch.relu(bn(self.bn2, self.conv2(out)) + shortcut)


class NoGradFirstConv(SolutionBlock):
    def forward(self, x):
        with torch.no_grad():
            first = self.conv1(x)
        shortcut = x if self.downsample is None else self.downsample(x)
        return torch.relu(self.bn2(self.conv2(torch.relu(self.bn1(first)))) + shortcut)


class DetachedWeight(SolutionBlock):
    def forward(self, x):
        shortcut = x if self.downsample is None else self.downsample(x)
        out = torch.relu(self.bn1(self.conv1(x)))
        out = F.conv2d(out, self.conv2.weight.detach(), padding=1)
        return torch.relu(self.bn2(out) + shortcut)


@pytest.mark.parametrize(
    ("block", "message"),
    [
        (DetachedWeight, r"the outputs match, but in train mode conv2\.weight gets no gradient"),
        (DetachedShortcut, r"stride=2\): the outputs match, but in train mode the gradient that "
         r"reaches the input misses the shortcut's share.*Don't call \.detach\(\).*the "
         r"shortcut passes the gradient wherever the final ReLU is active"),
        (AddsIntoItsInput, r"\(64, 64, stride=1\) in train mode: the backward pass failed.*"
         r"write out = out \+ shortcut"),
        (RunningStatisticsOnly, r"in eval mode your output matches, but in train mode it differs"
         r".*batch's own statistics"),
        (NoGradFirstConv, r"the gradient that reaches the input differs.*torch\.no_grad\(\).*"
         r"tensors\? conv1\.weight gets no gradient\.$"),
    ],
)  # fmt: skip
def test_basic_block_is_checked_in_train_mode_too(block, message):
    with pytest.raises(AssertionError, match=message):
        check_basic_block(block)


def test_basic_block_without_final_relu():
    class NoRelu(SolutionBlock):
        def __init__(self, in_channels, out_channels, stride=1):
            super().__init__(in_channels, out_channels, stride, final_relu=False)

    with pytest.raises(AssertionError, match="the final ReLU .* is missing"):
        check_basic_block(NoRelu)


def test_basic_block_parameter_slips():
    class ProjectionWithoutBN(SolutionBlock):
        def __init__(self, in_channels, out_channels, stride=1):
            super().__init__(in_channels, out_channels, stride)
            if self.downsample is not None:
                self.downsample = self.downsample[0]

    class AlwaysProjects(SolutionBlock):
        def __init__(self, in_channels, out_channels, stride=1):
            super().__init__(in_channels, out_channels, stride)
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    class WithBias(SolutionBlock):
        def __init__(self, in_channels, out_channels, stride=1):
            super().__init__(in_channels, out_channels, stride, bias=True)

    with pytest.raises(
        AssertionError, match=r"downsample\.1 \(the BatchNorm after the shortcut's 1x1 conv\) is"
    ):
        check_basic_block(ProjectionWithoutBN)
    with pytest.raises(AssertionError, match=r"\(64, 64, stride=1\).*should be the identity"):
        check_basic_block(AlwaysProjects)
    with pytest.raises(
        AssertionError, match=r"expected 230,144: conv1, conv2 have biases: the reference's convs"
    ):
        check_basic_block(WithBias)


def test_basic_block_with_wrong_signature():
    class OneArgument(nn.Module):
        def __init__(self, channels):
            super().__init__()

    with pytest.raises(AssertionError, match=r"must take \(in_channels, out_channels, stride=1\)"):
        check_basic_block(OneArgument)


def test_bottleneck_params_accepts_the_count(capsys):
    right = sum(p.numel() for p in Bottleneck(256, 64).parameters())
    assert right == 256 * 64 + 64 * 64 * 9 + 64 * 256 + 2 * (64 + 64 + 256)
    check_bottleneck_params(right)
    check_bottleneck_params(float(right))
    assert capsys.readouterr().out.count("Correct: Bottleneck(256, 64) has 70,400") == 2


@pytest.mark.parametrize(
    ("answer", "message"),
    [
        (69_632, "you left out the BatchNorm parameters"),
        (71_168, "running_mean and running_var"),
        (70_784, "no bias"),
        (136_448, "there is no projection here"),
        (70_400 - 8 * 64 * 64, "the middle conv is 3x3"),
        (70_400 - 192 * 64 - 2 * 192, "expands 64 channels to 64 x 4 = 256"),
        (70_000, "off by -400"),
        ("70400", "expected a whole number"),
    ],
)
def test_bottleneck_params_explains_wrong_answers(answer, message):
    with pytest.raises(AssertionError, match=message):
        check_bottleneck_params(answer)


def test_checkers_ask_for_an_answer_on_the_student_placeholder():
    with pytest.raises(NotImplementedError, match="your MyBasicBlock is not written yet"):
        check_basic_block(TODO)
    with pytest.raises(NotImplementedError, match="your bottleneck_params is not written yet"):
        check_bottleneck_params(TODO)


class Hard64(SolutionBlock):
    """Ignores in_channels: conv1 and the projection always read 64 channels."""

    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__(64, out_channels, stride)
        if stride == 1 and out_channels == 64:
            self.downsample = None


def test_basic_block_that_ignores_in_channels():
    # every case had 64 input channels, so a block wired for 64 passed as correct
    with pytest.raises(AssertionError) as err:
        check_basic_block(Hard64)
    message = str(err.value)
    assert message.startswith("Hard64(128, 256, stride=2) failed on an input of shape (2, 128,")
    assert "conv1 and downsample.0 are built for 64 input channels, but this block receives " in (
        message
    )
    assert "build them with in_channels, not a fixed number" in message


class WithoutBN2(SolutionBlock):
    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__(in_channels, out_channels, stride)
        del self.bn2

    def forward(self, x):
        shortcut = x if self.downsample is None else self.downsample(x)
        return torch.relu(self.conv2(torch.relu(self.bn1(self.conv1(x)))) + shortcut)


class WithoutBN1(SolutionBlock):
    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__(in_channels, out_channels, stride)
        del self.bn1

    def forward(self, x):
        shortcut = x if self.downsample is None else self.downsample(x)
        return torch.relu(self.bn2(self.conv2(torch.relu(self.conv1(x)))) + shortcut)


class BNAfterAddition(SolutionBlock):
    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__(in_channels, out_channels, stride)
        self.bn3 = nn.BatchNorm2d(out_channels)

    def forward(self, x):
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.bn2(self.conv2(torch.relu(self.bn1(self.conv1(x)))))
        return torch.relu(self.bn3(out + shortcut))


class RenamedWithoutBN(SolutionBlock):
    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__(in_channels, out_channels, stride)
        self.norm1 = self.bn1
        del self.bn1, self.bn2

    def forward(self, x):
        shortcut = x if self.downsample is None else self.downsample(x)
        return torch.relu(self.conv2(torch.relu(self.norm1(self.conv1(x)))) + shortcut)


@pytest.mark.parametrize(
    ("block", "message"),
    [
        (WithoutBN2, r"has 229,888 parameters; expected 230,144: bn2 \(the BatchNorm after conv2\) "
         r"is missing$"),
        (WithoutBN1, r": bn1 \(the BatchNorm after conv1\) is missing$"),
        (BNAfterAddition, r": there is an extra BatchNorm, bn3: the reference has only bn1 \(the "
         r"BatchNorm after conv1\), bn2 \(the BatchNorm after conv2\), downsample\.1 \(the "
         r"BatchNorm after the shortcut's 1x1 conv\); none follows the addition$"),
        (RenamedWithoutBN, r": your BatchNorms are downsample\.1, norm1; the reference has bn1 "
         r"\(the BatchNorm after conv1\), bn2 .*: keep these names$"),
    ],
)  # fmt: skip
def test_basic_block_names_the_batchnorm_that_is_missing_or_extra(block, message):
    # the hint guessed from the count alone: a missing bn2 read as the shortcut's BatchNorm, an
    # extra one after the addition as conv biases
    with pytest.raises(AssertionError, match=message):
        check_basic_block(block)


class DropoutInF(SolutionBlock):
    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__(in_channels, out_channels, stride)
        self.drop = nn.Dropout(0.2)

    def forward(self, x):
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.drop(torch.relu(self.bn1(self.conv1(x))))
        return torch.relu(self.bn2(self.conv2(out)) + shortcut)


def test_basic_block_with_dropout_names_it():
    with pytest.raises(AssertionError) as err:
        check_basic_block(DropoutInF)
    message = str(err.value)
    assert "in eval mode your output matches, but in train mode it differs" in message
    assert "Your block has a Dropout (drop), which zeroes random units in train mode" in message
    assert "BatchNorm" not in message


class Conv2Fixed(SolutionBlock):
    """conv2 typed for 128 input channels, as cell 14's conv2_128."""

    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__(in_channels, out_channels, stride)
        self.conv2 = nn.Conv2d(128, out_channels, 3, 1, 1, bias=False)


def test_basic_block_with_a_fixed_conv2_is_told_to_use_out_channels():
    # the hint said conv2 "receives" the block's input and asked for in_channels, which then
    # fails at (64, 128, 2); conv2 reads conv1's output, out_channels wide
    with pytest.raises(AssertionError) as err:
        check_basic_block(Conv2Fixed)
    message = str(err.value)
    assert message.startswith("Conv2Fixed(64, 64, stride=1) failed on an input of shape")
    assert message.endswith(
        "conv2 is built for 128 input channels, but conv1 gives it 64: build it with "
        "out_channels, not a fixed number"
    )
    assert "in_channels," not in message


class Conv2In(SolutionBlock):
    """conv2 built from in_channels: a variable, but the wrong one."""

    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__(in_channels, out_channels, stride)
        self.conv2 = nn.Conv2d(in_channels, out_channels, 3, 1, 1, bias=False)


class Conv1FromOut(SolutionBlock):
    """conv1 built to read out_channels instead of in_channels."""

    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__(in_channels, out_channels, stride)
        self.conv1 = nn.Conv2d(out_channels, out_channels, 3, stride, 1, bias=False)


class Conv1NotWidened(SolutionBlock):
    """conv1 (and bn1) keep in_channels; conv2 is built right, for out_channels."""

    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__(in_channels, out_channels, stride)
        self.conv1 = nn.Conv2d(in_channels, in_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(in_channels)


class Conv1And2Wrong(SolutionBlock):
    """conv1 outputs a fixed 64 and conv2 reads a fixed 256: conv1 does not give it 128."""

    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__(in_channels, out_channels, stride)
        self.conv1 = nn.Conv2d(in_channels, 64, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.conv2 = nn.Conv2d(256, out_channels, 3, 1, 1, bias=False)


# The hint said "not a fixed number" for a conv built from the other variable, and took conv2's
# input to be out_channels whatever conv1 gave it: it missed a conv1 that is not widened (the
# fallback blamed the shortcut) and said "conv1 gives it 128" when conv1 gave 64.
@pytest.mark.parametrize(
    ("block", "hint"),
    [
        (
            Conv2In,
            "conv2 is built for 64 input channels, but conv1 gives it 128: build it with "
            "out_channels, not in_channels",
        ),
        (
            Conv1FromOut,
            "conv1 is built for 128 input channels, but this block receives 64: build it with "
            "in_channels, not out_channels",
        ),
        (
            Conv1NotWidened,
            "conv1 outputs 64 channels, but it must output out_channels (128), which conv2 "
            "reads: build conv1 with out_channels",
        ),
        (
            Conv1And2Wrong,
            "conv1 outputs 64 channels, but it must output out_channels (128), which conv2 "
            "reads: build conv1 with out_channels; conv2 is built for 256 input channels, but "
            "conv1 should give it out_channels (128): build it with out_channels, not a fixed "
            "number",
        ),
    ],
)
def test_basic_block_names_the_wrong_width_of_each_conv(block, hint):
    with pytest.raises(AssertionError) as err:
        check_basic_block(block)
    message = str(err.value)
    assert message.startswith(f"{block.__name__}(64, 128, stride=2) failed on an input of shape")
    assert message.endswith(hint)
    assert "shortcut must give that shape" not in message


class AlwaysProject(SolutionBlock):
    """Builds the projection (1x1 conv + BN) even when the shapes match."""

    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__(in_channels, out_channels, stride)
        self.downsample = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
            nn.BatchNorm2d(out_channels),
        )


def test_needless_projection_is_not_blamed_on_the_addition():
    # its BatchNorm, downsample.1, was also reported as an extra one with "none follows the
    # addition", although it sits on the shortcut
    with pytest.raises(AssertionError) as err:
        check_basic_block(AlwaysProject)
    message = str(err.value)
    assert message.startswith(
        "AlwaysProject(64, 64, stride=1) has 78,208 parameters; expected 73,984:"
    )
    assert message.endswith(
        "your block has a projection although input and output shapes match: the shortcut "
        "should be the identity here (downsample = None)"
    )
    assert "addition" not in message
