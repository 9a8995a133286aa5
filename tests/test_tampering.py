"""An answer that patches what its check uses, or gives a lying object, gets 0 points and a flag.

The tampers run here the way `grade` runs them in a kernel: the grader's cell (`watch_answer`),
the answer executed as `__main__`, then the course's check cell as `guarded` rewrites it. One
small grading run of a two-exercise course notebook shows the outcome and the gradebook's flags.
"""

from __future__ import annotations

import csv
import importlib
import io
import sys
from contextlib import redirect_stdout
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch

import medtl_helpers.models
from medtl_helpers.course import watch
from medtl_helpers.course.checks import (
    check_bottleneck_params,
    check_partial_count,
    check_target_layer,
)
from medtl_helpers.course.checks.common import plain
from medtl_helpers.course.grading import Exercise, Rebuilt, course_notebook
from medtl_helpers.course.outcomes import Execution, outcome
from medtl_helpers.course.tampering import guarded, watch_answer
from medtl_helpers.course.watch import TamperingError

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
RESNET34_PARTIAL = 19_937_794
# Issue #32's two tampers, as written in it: each scored full points before the watch.
REBIND_GROUP_OF = """\
import medtl_helpers.models as M
M.group_of = lambda name: "none of them"


def freeze_groups(model, groups):  # freezes nothing
    for param in model.parameters():
        param.requires_grad_(True)
"""
WHOLE = """\
class Whole(int):
    def __eq__(self, other):
        return True

    def __ne__(self, other):
        return False

    __hash__ = int.__hash__


resnet34_partial = Whole(0)
"""
LAZY = """\
import importlib


def freeze_groups(model, groups):  # patches the checker's own group_of while it runs
    importlib.import_module("medtl_helpers.course.checks.nb03").group_of = lambda name: "?"
    for param in model.parameters():
        param.requires_grad_(True)
"""
FREEZE_CHECK = "check_freeze_groups(freeze_groups)"
COUNT_CHECK = "check_partial_count(resnet34_partial)"
RIGHT_COUNT = f"resnet34_partial = {RESNET34_PARTIAL}\n"


@pytest.fixture(autouse=True)
def no_note_left():
    """A test that stops between the note and the check must not leave it to the next."""
    yield
    watch.WATCH.noted, watch.WATCH.found = None, []


def graded_check(answer: str, check: str, namespace: dict | None = None) -> tuple[str, str]:
    """("passed", what it printed) or (exception name, message) for `answer` then `check`."""
    namespace = {"__name__": "__main__"} if namespace is None else namespace
    watch_answer()
    exec(answer, namespace)
    try:
        with redirect_stdout(io.StringIO()) as printed:
            exec(guarded(check), namespace)
    except Exception as err:
        return type(err).__name__, str(err)
    return "passed", printed.getvalue()


def left_changed(before: dict) -> list[str]:
    """What differs from the note `before` (taken before the tamper), but in the checkers'
    modules, which `genuine` loads again (their names only: nothing added may stay)."""
    changed = []
    for name, noted in before.items():
        if name.startswith("medtl_helpers.course.checks."):
            changed += sorted(vars(noted.module).keys() - noted.names.keys())
        else:
            changed += [what for what, _ in watch._changes(name, noted)]
    return changed


def test_a_rebound_course_function_is_put_back_and_flagged_with_the_checks_verdict():
    group_of = medtl_helpers.models.group_of
    assert guarded(FREEZE_CHECK).endswith(f"with watched():\n    {FREEZE_CHECK}")
    name, message = graded_check(REBIND_GROUP_OF, FREEZE_CHECK)
    flag, _, verdict = message.partition("\n")
    assert (name, flag) == ("TamperingError", "the answer rebound medtl_helpers.models.group_of")
    assert verdict.startswith("freeze_groups(model, ['stem']) left conv1.weight trainable")
    assert medtl_helpers.models.group_of is group_of


def test_a_patch_made_while_the_check_runs_is_found_after_it():
    checker = importlib.import_module("medtl_helpers.course.checks.nb03")
    assert graded_check(LAZY, FREEZE_CHECK) == (
        "TamperingError",
        "the answer rebound medtl_helpers.course.checks.nb03.group_of while the check ran",
    )
    assert checker.group_of is medtl_helpers.models.group_of


BASIC = medtl_helpers.models.BasicBlock
FORWARD = "rebound" if "forward" in vars(BASIC) else "added"


@pytest.mark.parametrize(
    ("tamper", "flag"),
    [
        ("import torch\ntorch.allclose = lambda *args, **kwargs: True", "rebound torch.allclose"),
        ("import math\nmath.isclose = lambda *args, **kwargs: True", "rebound math.isclose"),
        ("import medtl_helpers.models.freezing as f\ndel f.count_parameters",
         "deleted medtl_helpers.models.freezing.count_parameters"),
        ("import importlib\nimportlib.import_module('medtl_helpers.course.checks.nb03')"
         ".isinstance = lambda *args: True",
         "added medtl_helpers.course.checks.nb03.isinstance"),
        ("from medtl_helpers.models import BasicBlock\nBasicBlock.forward = lambda self, x: x",
         f"{FORWARD} {BASIC.__module__}.BasicBlock.forward"),
        ("from medtl_helpers.models import group_of\ngroup_of.__code__ = (lambda n: 0).__code__",
         f"changed the code of {medtl_helpers.models.group_of.__module__}.group_of"),
        ("import sys, types\nsys.modules['medtl_helpers.models'] = types.ModuleType('fake')",
         "replaced sys.modules['medtl_helpers.models']"),
    ],
)  # fmt: skip
def test_any_rebinding_of_a_watched_module_is_named_and_put_back(tamper, flag):
    before = watch._notes()
    assert graded_check(RIGHT_COUNT + tamper, COUNT_CHECK) == (
        "TamperingError", f"the answer {flag}"
    )  # fmt: skip
    assert left_changed(before) == []


def test_setting_the_same_object_again_or_importing_a_submodule_changes_nothing():
    sys.modules.pop("torch.utils.model_zoo", None)
    vars(torch.utils).pop("model_zoo", None)
    same = (
        "import math, torch\ntorch.allclose = torch.allclose\nmath.pi = float(str(math.pi))\n"
        "import torch.utils.model_zoo\n"
    )
    name, printed = graded_check(RIGHT_COUNT + same, COUNT_CHECK)
    assert (name, printed.split(":")[0]) == ("passed", "Correct")


def test_an_int_subclass_that_equals_anything_is_flagged_not_counted():
    assert graded_check(WHOLE, COUNT_CHECK) == (
        "TamperingError",
        "resnet34_partial is a Whole, a subclass of int defined in the notebook: give a plain int",
    )


NOTEBOOK_CLASSES = """\
from medtl_helpers.training.stages import Stage


class Sneaky(str):
    def __eq__(self, other):
        return True

    __hash__ = str.__hash__


class Whole(int):
    def __ne__(self, other):
        return False


class MyStage(Stage):
    pass
"""


@pytest.mark.parametrize(
    ("check", "answer", "what"),
    [
        (check_partial_count, "Whole(0)", "resnet34_partial is a Whole, a subclass of int"),
        (check_bottleneck_params, "Whole(1)", "bottleneck_params is a Whole, a subclass of int"),
        (check_target_layer, "Sneaky('stem')", "TARGET_LAYER is a Sneaky, a subclass of str"),
        ("check_leaked_patients", "lambda train, val: {Sneaky('x')}",
         "an item of the value leaked_patients returned is a Sneaky, a subclass of str"),
        ("check_passes_needed", "lambda *case: Whole(1)",
         "the value passes_needed(38, 32, 2, 40) returned is a Whole, a subclass of int"),
        ("check_most_drifted", "lambda drift: Sneaky('blur')",
         "the value most_drifted returned is a Sneaky, a subclass of str"),
        ("check_stage_plan", "[MyStage('head', 2, 'all', 1e-3)]",
         "an item of my_stages is a MyStage, a subclass of Stage"),
        ("check_episode_leak", "lambda episode, pool: [Sneaky('p0')]",
         "an item of the value shared_patients returned is a Sneaky, a subclass of str"),
    ],
)  # fmt: skip
def test_checkers_refuse_objects_of_classes_the_notebook_made(check, answer, what):
    namespace = {"__name__": "__main__"}
    exec(NOTEBOOK_CLASSES, namespace)
    if isinstance(check, str):
        check = getattr(importlib.import_module("medtl_helpers.course.checks"), check)
    with pytest.raises(TamperingError) as raised:
        check(eval(answer, namespace))
    base = what.split()[-1]
    assert str(raised.value) == f"{what} defined in the notebook: give a plain {base}"


def test_plain_sees_through_containers_and_a_class_that_lies_about_its_module():
    namespace = {"__name__": "__main__"}
    exec("class Forged(float):\n    __module__ = 'builtins'\n", namespace)
    forged = namespace["Forged"](0.5)
    for value, where in [
        (forged, "x is a Forged"),
        ({"train": [1.0, forged]}, "an item of x is a Forged"),
        (np.array([1, forged], dtype=object), "an item of x is a Forged"),
    ]:
        with pytest.raises(TamperingError, match=f"^{where}, a subclass of float defined in"):
            plain(value, "x")
    honest = [np.int64(3), np.float32(0.5), torch.tensor([1.0]), {"a": {1, 2}}, "layer4", None]
    assert plain(honest, "x") is honest


def test_plain_numbers_pass_and_bool_is_no_count(capsys):
    check_partial_count(np.int64(RESNET34_PARTIAL))
    check_bottleneck_params(torch.tensor(70_400))
    assert capsys.readouterr().out.count("Correct") == 2
    with pytest.raises(AssertionError, match=r"Your answer is a bool \(True\); give a whole"):
        check_partial_count(True)


def exercise_cells(stem: str) -> list[tuple[str, str, str]]:
    """(the exercise's own set-up cells, its solution, its check) for each checked exercise."""
    cells, found, setup = nbformat.read(NOTEBOOKS / f"{stem}.ipynb", as_version=4).cells, [], []
    for cell in cells:
        tags = cell.metadata.get("tags", [])
        if "exercise" in tags:
            setup.append(cell.source)
        elif "solution" in tags:
            solution = cell.source
        elif "check" in tags:
            found.append(("\n".join(setup), solution, cell.source))
            setup = []
    return found


def test_the_instructors_solutions_of_03_are_not_flagged():
    skeleton = medtl_helpers.models.build_model("resnet18", pretrained="none", verbose=False)
    namespace = {"__name__": "__main__", "source": skeleton}
    for setup, solution, check in exercise_cells("03_freezing_strategies"):
        with redirect_stdout(io.StringIO()):
            exec(setup, namespace)
        name, printed = graded_check(solution, check, namespace)
        assert name == "passed" and printed.startswith(("Well done", "Correct")), printed


def test_a_tampering_error_is_a_wrong_outcome_with_the_flag_apart():
    exercise = Exercise("03.1", "a", "c", "check_freeze_groups")
    cells = [nbformat.v4.new_code_cell("x") for _ in range(2)]
    rebuilt = Rebuilt(nbformat.v4.new_notebook(cells=cells), {"03.1": [0]}, {"03.1": 1})
    flag = "the answer rebound medtl_helpers.models.group_of"
    verdict = "freeze_groups(...) left conv1.weight trainable."
    for evalue, message in [(f"{flag}\n{verdict}\n", verdict), (flag, flag)]:
        run = Execution(errors={0: ("", ""), 1: ("TamperingError", evalue)})
        result = outcome(exercise, rebuilt, run)
        assert (result.outcome, result.message, result.flag) == ("wrong", message, flag)


def tiny_course(folder: Path) -> Path:
    """A course notebook with notebook 03's two exercises, and nothing else to run."""
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

    cells = [
        new_markdown_cell("# 00 · Tiny"),
        new_code_cell("from medtl_helpers.course.checks import check_freeze_groups, "
                      "check_partial_count\nfrom medtl_helpers.models import freeze"),
    ]  # fmt: skip
    for solution, check in (("freeze_groups = freeze", FREEZE_CHECK), (RIGHT_COUNT, COUNT_CHECK)):
        cells += [
            new_code_cell("pass", metadata={"tags": ["exercise"]}),
            new_code_cell(solution, metadata={"tags": ["solution"]}),
            new_code_cell(check, metadata={"tags": ["check"]}),
        ]
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(new_notebook(cells=cells), folder / "00_tiny.ipynb")
    return folder


def test_grade_gives_the_tampers_no_points_and_flags_what_they_did(tmp_path):
    from medtl_helpers.course.gradebook import grade_class

    course = tiny_course(tmp_path / "course")
    template = course_notebook(course / "00_tiny.ipynb").template
    answers = iter([REBIND_GROUP_OF, WHOLE])
    for cell in template.cells:
        if "exercise-answer" in cell.metadata.get("tags", []):
            cell.source = next(answers)
    nbformat.write(template, tmp_path / "mallory_00.ipynb")
    with redirect_stdout(io.StringIO()):
        (graded,) = grade_class([tmp_path / "mallory_00.ipynb"], tmp_path / "out", course,
                                cell_timeout=60, notebook_timeout=180)  # fmt: skip
    assert [(r.outcome, r.flag) for r in graded.results] == [
        ("wrong", "the answer rebound medtl_helpers.models.group_of"),
        ("wrong", "resnet34_partial is a Whole, a subclass of int defined in the notebook: give "
                  "a plain int"),
    ]  # fmt: skip
    assert graded.results[0].message.startswith("freeze_groups(model, ['stem']) left conv1")
    row = next(csv.DictReader((tmp_path / "out" / "gradebook.csv").open()))
    assert row["points"] == "0"
    assert "00.1: the answer rebound medtl_helpers.models.group_of" in row["flags"]
    assert "00.2: resnet34_partial is a Whole" in row["flags"]
