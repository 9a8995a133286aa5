"""What every checker shares: the placeholder a student copy starts from.

In the student notebooks (`make student`) each solution cell becomes a stub that binds the
names the exercise asks for to `TODO` and raises `NotImplementedError` with a hint. Every
checker calls `require_answer` first, so a checker run on an unanswered exercise raises
`NotImplementedError` too, with a sentence that says what to write, instead of a confusing
error about a `None` or a missing name.
"""

from __future__ import annotations


class _Todo:
    """Placeholder for an exercise answer that has not been written yet."""

    def __repr__(self) -> str:
        return "TODO"

    def __bool__(self) -> bool:
        return False


TODO = _Todo()


def require_answer(answer: object, what: str) -> None:
    """Raise NotImplementedError when `answer` is still the student copy's placeholder."""
    if answer is TODO:
        raise NotImplementedError(
            f"{what} is not written yet: replace the placeholder cell above (its `= TODO` lines "
            "and its `raise NotImplementedError(...)`) with your answer, run it, then run this "
            "check again."
        )
