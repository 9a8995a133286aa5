"""Every checker refuses the student placeholder with the same sentence, before anything else."""

from __future__ import annotations

import inspect

import pytest

from medtl_helpers.course import checks
from medtl_helpers.course.checks import TODO, require_answer

CHECKERS = sorted(name for name in checks.__all__ if name.startswith("check_"))


def test_every_notebook_contributes_checkers():
    assert len(CHECKERS) == 23
    # A notebook's checkers may be split over modules (nb09.py and nb09_prototypes.py).
    modules = {getattr(checks, name).__module__.rsplit(".", 1)[-1] for name in CHECKERS}
    assert {module.split("_")[0] for module in modules} == {f"nb0{i}" for i in range(10)}


@pytest.mark.parametrize("name", CHECKERS)
def test_a_checker_given_the_placeholder_asks_for_the_answer(name):
    checker = getattr(checks, name)
    params = list(inspect.signature(checker).parameters.values())
    # Any further arguments are never looked at: the placeholder is refused first.
    others = [object() for p in params[1:] if p.default is inspect.Parameter.empty]
    with pytest.raises(NotImplementedError) as caught:
        checker(TODO, *others)
    message = str(caught.value)
    assert message.startswith("your ") and " is not written yet: replace the placeholder" in message
    assert message.endswith("then run this check again.")


def test_the_placeholder_reads_as_todo_and_is_falsy():
    assert repr(TODO) == "TODO" and not TODO
    require_answer(0, "your count")  # a real answer, even a falsy one, passes
    with pytest.raises(NotImplementedError, match="^your count is not written yet"):
        require_answer(TODO, "your count")
