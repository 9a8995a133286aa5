import nbformat

from medtl_helpers.course.runner import NotebookRun, announced_source, run_course, timings_markdown


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
    assert [row.split(" | ")[0] for row in table[4:]] == [
        "| 00_first",
        "| 01_second",
        "| 02_broken",
        "| whole course",
    ]
    assert table[6].endswith("| FAILED: ValueError: boom |")


def test_timings_table_adds_up_the_course():
    runs = [
        NotebookRun("00_setup_and_data", 61.25, "gpu", "kermany-folder"),
        NotebookRun("04_pneumonia_training_gpu", 358.75, "gpu", "kermany-folder", "OOM"),
    ]
    assert timings_markdown(runs, "cuda (Tesla T4, 15 GiB)").splitlines() == [
        "Profile gpu on cuda (Tesla T4, 15 GiB).",
        "",
        "| notebook | seconds | data | status |",
        "|---|---|---|---|",
        "| 00_setup_and_data | 61.2 | kermany-folder | ok |",
        "| 04_pneumonia_training_gpu | 358.8 | kermany-folder | FAILED: OOM |",
        "| whole course | 7.0 min | | |",
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
