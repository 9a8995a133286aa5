"""The notebook-02 checkers accept the reference answers and explain typical wrong ones."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest

from medtl_helpers.course.checks import TODO, check_conv_params, check_deepest_within

# Latencies not in depth order (resnet50 slower than resnet101 here), as a busy CPU can give.
ROWS = [
    {"arch": "resnet18", "latency_b1_ms": 4.0},
    {"arch": "resnet34", "latency_b1_ms": 7.5},
    {"arch": "resnet50", "latency_b1_ms": 12.0},
    {"arch": "resnet101", "latency_b1_ms": 11.0},
    {"arch": "resnet152", "latency_b1_ms": 30.0},
]
# Latencies that grow with depth, as on a quiet machine: "the slowest that fits" is right here.
MONOTONE = [
    {"arch": "resnet18", "latency_b1_ms": 4.0, "params_M": 11.7},
    {"arch": "resnet34", "latency_b1_ms": 7.5, "params_M": 21.8},
    {"arch": "resnet50", "latency_b1_ms": 11.0, "params_M": 25.6},
]
DEPTH = {"resnet18": 18, "resnet34": 34, "resnet50": 50, "resnet101": 101, "resnet152": 152}


def reference_conv_params(c_in, c_out, kernel_size, bias=False):
    return c_out * c_in * kernel_size * kernel_size + (c_out if bias else 0)


def reference_deepest_within(rows, budget_ms):
    fitting = [r["arch"] for r in rows if r["latency_b1_ms"] <= budget_ms]
    return max(fitting, key=DEPTH.get) if fitting else None


def test_conv_params_accepts_the_reference(capsys):
    check_conv_params(reference_conv_params)
    assert "Correct" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("wrong", "message"),
    [
        (lambda i, o, k, b: o * i * k * k + o, r"bias=False there is no bias: you added 64"),
        (lambda i, o, k, b: o * i * k * k, r"bias=True adds one value per output channel"),
        (lambda i, o, k, b: o * k * k + (o if b else 0), r"spans all C_in input channels"),
        (lambda i, o, k, b: o * i * k + (o if b else 0), r"k\*k = 49 weights .* not k = 7"),
        (lambda i, o, k, b: i * k * k + (o if b else 0), r"one filter per OUTPUT channel"),
        (lambda i, o, k, b: str(o * i * k * k), r"returned a str"),
    ],
)
def test_conv_params_explains_typical_mistakes(wrong, message):
    with pytest.raises(AssertionError, match=message):
        check_conv_params(wrong)


def test_conv_params_reports_the_call_and_both_numbers():
    with pytest.raises(AssertionError, match=r"conv_params\(3, 64, 7, bias=False\) returned 3,136"):
        check_conv_params(lambda i, o, k, b: o * k * k)


def test_deepest_within_accepts_the_reference(capsys):
    check_deepest_within(reference_deepest_within, ROWS)
    assert "Correct" in capsys.readouterr().out


def test_deepest_within_accepts_the_notebooks_solution(capsys):
    path = Path(__file__).resolve().parents[1] / "notebooks" / "02_resnet_depth_selection.ipynb"
    cells = nbformat.read(path, as_version=4).cells
    solution = next(
        c.source
        for c in cells
        if "solution" in c.metadata.get("tags", []) and "def deepest_within" in c.source
    )
    namespace = {}
    exec(solution.split("\n\n\nprint(")[0], namespace)  # the definition, not the demo print
    check_deepest_within(namespace["deepest_within"], ROWS)
    check_deepest_within(namespace["deepest_within"], MONOTONE)
    assert capsys.readouterr().out.count("Correct") == 2


def test_deepest_within_rejects_the_slowest_that_fits_when_latency_grows_with_depth():
    def slowest(rows, budget_ms):
        fitting = [r for r in rows if r["latency_b1_ms"] <= budget_ms]
        return max(fitting, key=lambda r: r["latency_b1_ms"])["arch"] if fitting else None

    with pytest.raises(AssertionError) as err:
        check_deepest_within(slowest, MONOTONE)
    message = str(err.value)
    assert message.startswith(
        "On a made-up table where latency does not grow with depth and the rows are not in depth "
        "order (resnet34 9 ms, resnet18 5 ms, resnet152 13 ms, resnet50 7 ms, resnet101 15 ms)"
    )
    assert "you returned 'resnet34' (9.00 ms); expected 'resnet50' (7.00 ms" in message
    assert "you took the slowest that fits; the question asks for the deepest" in message


def test_deepest_within_rejects_the_fastest_that_fits():
    def fastest(rows, budget_ms):
        fitting = [r for r in rows if r["latency_b1_ms"] <= budget_ms]
        return min(fitting, key=lambda r: r["latency_b1_ms"])["arch"] if fitting else None

    with pytest.raises(AssertionError, match=r"take the deepest, not the fastest"):
        check_deepest_within(fastest, ROWS)


def test_deepest_within_rejects_a_strict_comparison():
    def strict(rows, budget_ms):
        fitting = [r["arch"] for r in rows if r["latency_b1_ms"] < budget_ms]
        return max(fitting, key=DEPTH.get) if fitting else None

    with pytest.raises(AssertionError, match=r"use <=, not <"):
        check_deepest_within(strict, ROWS)


def test_deepest_within_rejects_the_last_row_that_fits_in_table_order():
    # stops at the first row over budget: misses resnet101, which fits although resnet50 does not
    def first_run(rows, budget_ms):
        best = None
        for r in rows:
            if r["latency_b1_ms"] > budget_ms:
                break
            best = r["arch"]
        return best

    with pytest.raises(AssertionError, match=r"expected 'resnet101'.*also fits and is deeper"):
        check_deepest_within(first_run, ROWS)


def test_deepest_within_rejects_the_last_row_that_fits_when_rows_are_in_depth_order():
    # right on any table sorted by depth, as the student's own usually is
    def last_fitting_row(rows, budget_ms):
        fitting = [r["arch"] for r in rows if r["latency_b1_ms"] <= budget_ms]
        return fitting[-1] if fitting else None

    check_deepest_within(reference_deepest_within, MONOTONE)  # the student's table: in order
    with pytest.raises(AssertionError) as err:
        check_deepest_within(last_fitting_row, MONOTONE)
    message = str(err.value)
    assert message.startswith("On a made-up table where latency does not grow with depth and")
    assert "with a budget of 14.00 ms you returned 'resnet50', the last row that fits; " in message
    assert "expected 'resnet152' (152 layers against 50)" in message
    assert "The last row is the deepest only when the rows are sorted by depth" in message


def test_deepest_within_rejects_failing_when_nothing_fits():
    def crashes(rows, budget_ms):
        return max((r["arch"] for r in rows if r["latency_b1_ms"] <= budget_ms), key=DEPTH.get)

    with pytest.raises(AssertionError, match=r"raised ValueError.*return None"):
        check_deepest_within(crashes, ROWS)


def test_deepest_within_rejects_an_answer_over_budget_and_none_when_one_fits():
    with pytest.raises(AssertionError, match=r"'resnet152', which takes 30.00 ms, over the budget"):
        check_deepest_within(lambda rows, budget: "resnet152", ROWS)
    with pytest.raises(AssertionError, match=r"return None only when no architecture fits"):
        check_deepest_within(lambda rows, budget: None if budget < 100 else "resnet152", ROWS)


def test_checkers_ask_for_an_answer_on_the_student_placeholder():
    with pytest.raises(NotImplementedError, match="your conv_params is not written yet"):
        check_conv_params(TODO)
    with pytest.raises(NotImplementedError, match="your deepest_within is not written yet"):
        check_deepest_within(TODO, ROWS)


def string_max(rows, budget_ms):
    # max() of the names compares text: "resnet50" > "resnet152" because "5" > "1"
    fitting = [r["arch"] for r in rows if r["latency_b1_ms"] <= budget_ms]
    return max(fitting) if fitting else None


def test_deepest_within_says_when_the_names_were_compared_as_strings():
    with pytest.raises(AssertionError) as err:
        check_deepest_within(string_max, ROWS)
    message = str(err.value)
    assert message.startswith("On your table, with a budget of 11.50 ms you returned 'resnet34'; ")
    assert "expected 'resnet101' (101 layers against 34)" in message
    assert "compared the names as text" in message
    assert "'resnet34' > 'resnet101' ('3' > '1' at the first difference)" in message
    assert "not the fastest" not in message


def test_deepest_within_names_string_order_not_the_last_row_on_the_made_up_table():
    # on a table of resnet18/34/50 only, string order is depth order: the made-up table catches it
    with pytest.raises(AssertionError) as err:
        check_deepest_within(string_max, MONOTONE)
    message = str(err.value)
    assert message.startswith("On a made-up table where latency does not grow with depth and")
    assert "with a budget of 14.00 ms you returned 'resnet50'; " in message
    assert "expected 'resnet152' (152 layers against 50)" in message
    assert "'resnet50' > 'resnet152' ('5' > '1' at the first difference)" in message
    assert "the last row that fits" not in message
