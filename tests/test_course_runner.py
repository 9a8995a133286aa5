import datetime

import nbformat
import torch

from medtl_helpers.course import runner
from medtl_helpers.course.runner import (
    NotebookRun,
    announced_source,
    measured_dates,
    run_course,
    timings_markdown,
    write_timings,
)
from medtl_helpers.models import weights_file


def write_notebook(path, source):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(source)]
    nbformat.write(nb, path)


def test_runs_in_order_and_summarises(tmp_path, capsys):
    folder = tmp_path / "nb"
    folder.mkdir()
    write_notebook(folder / "01_second.ipynb", "print('Data source: synthetic (x)')")
    write_notebook(folder / "00_first.ipynb", "print('Data source: kermany-folder (/d)')")
    write_notebook(folder / "02_broken.ipynb", "raise ValueError('boom')")
    write_notebook(folder / "scratch.ipynb", "print('not numbered: not run')")
    runs = run_course(folder, tmp_path / "out")
    lines = capsys.readouterr().out.splitlines()
    assert [r.name for r in runs] == ["00_first", "01_second", "02_broken"]
    assert lines[0].startswith("00_first") and "profile=quick" in lines[0]
    assert "data=kermany-folder" in lines[0] and "data=synthetic" in lines[1]
    assert "FAILED: ValueError: boom" in lines[2]
    executed = nbformat.read(tmp_path / "out" / "00_first.ipynb", as_version=4)
    assert announced_source(executed) == "kermany-folder"
    assert not (tmp_path / "out" / "scratch.ipynb").exists()
    table = (tmp_path / "out" / "timings.md").read_text().splitlines()
    assert table[0].startswith("Profile quick on cpu (") and table[2].startswith("| notebook |")
    assert [row.split(" | ")[0] for row in table[4:-2]] == [
        "| 00_first",
        "| 01_second",
        "| 02_broken",
        "| whole course (3 notebooks)",
    ]
    assert table[6].endswith("| FAILED: ValueError: boom |")


def test_timings_table_adds_up_the_course():
    runs = [
        NotebookRun("00_setup_and_data", 61.25, "gpu", "kermany-folder"),
        NotebookRun("04_pneumonia_training_gpu", 358.75, "gpu", "kermany-folder", "OOM"),
    ]
    assert timings_markdown(runs, "cuda (Tesla T4, 15 GiB)", course_size=10).splitlines() == [
        "Profile gpu on cuda (Tesla T4, 15 GiB).",
        "",
        "| notebook | seconds | data | status |",
        "|---|---|---|---|",
        "| 00_setup_and_data | 61.2 | kermany-folder | ok |",
        "| 04_pneumonia_training_gpu | 358.8 | kermany-folder | FAILED: OOM |",
        "| 2 of 10 notebooks | 7.0 min | | |",
    ]


def test_a_long_error_stays_one_cell_of_the_timings_table():
    error = "ValueError: a | b\n  at: /x\nFix: MEDTL_PRETRAINED=none."
    runs = [NotebookRun("00_a", 1.0, "quick", "-", error)]
    assert timings_markdown(runs, "cpu (x)", course_size=1).splitlines()[4:] == [
        r"| 00_a | 1.0 | - | FAILED: ValueError: a \| b at: /x Fix: MEDTL_PRETRAINED=none. |",
        "| whole course (1 notebook) | 0.0 min | | |",
    ]


def test_only_runs_the_listed_numbers(tmp_path, capsys):
    folder = tmp_path / "nb"
    folder.mkdir()
    for name in ("00_a", "01_b", "02_c"):
        write_notebook(folder / f"{name}.ipynb", f"print('{name}')")
    runs = run_course(folder, tmp_path / "out", only=["00", "02"])
    assert [r.name for r in runs] == ["00_a", "02_c"]
    assert run_course(folder, tmp_path / "out", only=["07"]) == []
    assert "matching ['07']" in capsys.readouterr().out


def test_a_timeout_and_a_dead_kernel_are_reported_and_the_course_goes_on(tmp_path, capsys):
    folder = tmp_path / "nb"
    folder.mkdir()
    write_notebook(folder / "00_slow.ipynb", "import time\ntime.sleep(30)")
    write_notebook(folder / "01_crash.ipynb", "import os\nos._exit(1)")
    write_notebook(folder / "02_fine.ipynb", "print('Data source: synthetic (x)')")
    runs = run_course(folder, tmp_path / "out", timeout=3)
    out = capsys.readouterr().out
    assert [r.error is None for r in runs] == [False, False, True]
    assert "longer than the 3 s timeout" in runs[0].error and runs[0].seconds < 25
    assert "the kernel died" in runs[1].error
    assert "2 of 3 notebooks FAILED:" in out and "  01_crash: the kernel died" in out
    assert "Kernel is running over TCP" not in out


def test_the_course_command_exits_non_zero_when_a_notebook_fails(tmp_path):
    from medtl_helpers.course.cli import main

    folder = tmp_path / "nb"
    folder.mkdir()
    write_notebook(folder / "00_broken.ipynb", "raise ValueError('boom')")
    assert main(["course", str(folder), "--out", str(tmp_path / "out")]) == 1


def test_missing_imagenet_weights_are_reported_whole_with_their_fix(tmp_path, monkeypatch, capsys):
    # the real error: ImageNet weights asked for offline, with an empty TORCH_HOME
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setenv("MEDTL_OFFLINE", "1")
    expected = str(weights_file("resnet18").absolute())
    folder = tmp_path / "nb"
    folder.mkdir()
    write_notebook(
        folder / "00_weights.ipynb",
        "from medtl_helpers import build_model\nbuild_model('resnet18', pretrained='imagenet')",
    )
    runs = run_course(folder, tmp_path / "out")
    out = capsys.readouterr().out
    summary = out[out.index("1 of 1 notebooks FAILED:") :]
    table = (tmp_path / "out" / "timings.md").read_text()
    for text in (runs[0].error, summary, table):
        assert "WeightsUnavailableError: ImageNet weights for resnet18" in text
        assert expected in text and "MEDTL_PRETRAINED=none" in text
    assert "\n        expected at:" in summary  # the message's lines, indented under its notebook
    rows = table.splitlines()[4:-2]
    assert len(rows) == 2 and rows[0].startswith("| 00_weights |") and rows[0].endswith(" |")


def test_only_merges_its_rows_into_the_timings_table(tmp_path, capsys):
    folder, out = tmp_path / "nb", tmp_path / "out"
    folder.mkdir()
    for name in ("00_a", "01_b", "02_c"):
        write_notebook(folder / f"{name}.ipynb", f"print('Data source: {name}')")
    first = run_course(folder, out, only=["01"])
    second = run_course(folder, out, only=["00"])
    assert "timings.md now holds 2 of 3 notebooks" in capsys.readouterr().out
    rows = (out / "timings.md").read_text().splitlines()[4:-2]
    assert [row.split(" | ")[:3] for row in rows[:2]] == [
        ["| 00_a", f"{second[0].seconds:.1f}", "00_a"],
        ["| 01_b", f"{first[0].seconds:.1f}", "01_b"],
    ]
    minutes = (round(first[0].seconds, 1) + round(second[0].seconds, 1)) / 60
    assert rows[2:] == [f"| 2 of 3 notebooks | {minutes:.1f} min | | |"]
    again = run_course(folder, out, only=["01"])  # a notebook run again replaces its row
    rows = (out / "timings.md").read_text().splitlines()[4:-2]
    assert [row.split(" | ")[:2] for row in rows] == [
        ["| 00_a", f"{second[0].seconds:.1f}"],
        ["| 01_b", f"{again[0].seconds:.1f}"],
        ["| 2 of 3 notebooks", rows[2].split(" | ")[1]],
    ]


def test_a_table_measured_with_another_profile_is_replaced(tmp_path, capsys):
    folder, out = tmp_path / "nb", tmp_path / "out"
    folder.mkdir()
    out.mkdir()
    write_notebook(folder / "00_a.ipynb", "print('a')")
    write_notebook(folder / "01_b.ipynb", "print('b')")
    (out / "timings.md").write_text(
        "Profile gpu on cuda (Tesla T4, 15 GiB).\n\n| notebook | seconds | data | status |\n"
        "|---|---|---|---|\n| 00_a | 61.2 | kermany-folder | ok |\n"
        "| 1 of 2 notebooks | 1.0 min | | |\n"
    )
    run_course(folder, out, only=["01"])
    assert "held times measured another way ('Profile gpu on cuda" in capsys.readouterr().out
    table = (out / "timings.md").read_text().splitlines()
    assert table[0].startswith("Profile quick on cpu (")
    assert [row.split(" | ")[0] for row in table[4:-2]] == ["| 01_b", "| 1 of 2 notebooks"]


def test_executed_copies_show_progress_bars_as_text(tmp_path):
    folder = tmp_path / "nb"
    folder.mkdir()
    write_notebook(
        folder / "00_bars.ipynb",
        "from medtl_helpers.progress import progress_bar\n"
        "for _ in progress_bar(range(50), desc='demo'):\n    pass\n"
        "for _ in progress_bar(range(7), desc='inner', leave=False):\n    pass",
    )
    assert run_course(folder, tmp_path / "out")[0].error is None
    executed = nbformat.read(tmp_path / "out" / "00_bars.ipynb", as_version=4)
    outputs = executed.cells[0].outputs
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert [line.split(":")[0] for line in text.splitlines()] == ["demo", "inner"]
    assert "50/50" in text and "7/7" in text
    assert not any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs)


def test_timings_record_the_torch_threads_and_the_dates_measured(tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "device_label", lambda: "cpu (Test CPU, 4 cores)")
    monkeypatch.setattr(torch, "get_num_threads", lambda: 3)
    table, course = tmp_path / "timings.md", ["00_a", "01_b"]
    today = datetime.date.today().isoformat()
    header = "Profile quick on cpu (Test CPU, 4 cores), 3 torch threads."
    table.write_text(
        f"{header}\n\n| notebook | seconds | data | status |\n|---|---|---|---|\n"
        "| 00_a | 2.0 | synthetic | ok |\n| 01_b | 4.0 | synthetic | ok |\n"
        "| whole course (2 notebooks) | 0.1 min | | |\n\nMeasured 2026-01-05.\n"
    )
    write_timings(table, [NotebookRun("01_b", 3.0, "quick", "synthetic")], course)
    lines = table.read_text().splitlines()
    assert lines[0] == header  # 00_a was kept: same profile, processor and threads
    assert lines[4:6] == ["| 00_a | 2.0 | synthetic | ok |", "| 01_b | 3.0 | synthetic | ok |"]
    assert lines[-2:] == ["", f"Measured 2026-01-05 to {today}."]
    assert measured_dates(table.read_text()) == ("2026-01-05", today)
    runs = [NotebookRun(name, 1.0, "quick", "synthetic") for name in course]
    write_timings(table, runs, course)  # every row measured again: only today's date is left
    assert table.read_text().splitlines()[-1] == f"Measured {today}."
    monkeypatch.setattr(torch, "get_num_threads", lambda: 1)
    write_timings(table, runs[:1], course)  # another thread count starts a new table
    lines = table.read_text().splitlines()
    assert lines[0] == "Profile quick on cpu (Test CPU, 4 cores), 1 torch thread."
    assert lines[4:6] == ["| 00_a | 1.0 | synthetic | ok |", "| 1 of 2 notebooks | 0.0 min | | |"]


def test_executed_copies_hold_their_figures_even_under_mpl_agg(tmp_path, monkeypatch):
    # The tests export MPLBACKEND=Agg; a kernel with it would draw every figure into nothing,
    # and the executed copies (and the website made of them) would show none.
    monkeypatch.setenv("MPLBACKEND", "Agg")
    assert "MPLBACKEND" not in runner.kernel_environment()
    folder = tmp_path / "nb"
    folder.mkdir()
    write_notebook(
        folder / "00_figure.ipynb",
        "import matplotlib.pyplot as plt\nplt.plot([0, 1], [1, 0])\nplt.show()",
    )
    run_course(folder, tmp_path / "out")
    executed = nbformat.read(tmp_path / "out" / "00_figure.ipynb", as_version=4)
    outputs = executed.cells[0].outputs
    assert any("image/png" in output.get("data", {}) for output in outputs)
