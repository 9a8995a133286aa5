#!/usr/bin/env python3
"""`make site`: the executed course as a static website in site/, built with MkDocs Material.

It never executes a notebook. It reads the executed copies that `make course` writes to
runs/notebooks/ (`--executed DIR` names another folder) and stages the pages in runs/site-src/:
the landing page with the syllabus, one page per executed notebook (the copy with one cell added
under its title: the profile, data source, weights, device and date it was executed with, read
from its own outputs, and links to Colab and to the .ipynb), docs/TEACHING.md,
benchmarks/RESULTS.md, README's Data section and an API reference from the docstrings. Then
`mkdocs build --strict` writes site/. mkdocs.yml is generated there too, since its navigation
lists the notebooks that were executed and the package's subpackages.
"""

from __future__ import annotations

import argparse
import datetime
import os
import posixpath
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import yaml

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "medtl_helpers"
PAGES = {"docs/TEACHING.md": "teaching.md", "benchmarks/RESULTS.md": "benchmarks.md"}
TITLES = {"teaching.md": "Teaching", "benchmarks.md": "Benchmarks", "data.md": "Data"}
_REPORT = re.compile(r"^(profile|weights|device) +(\S.*)$", re.MULTILINE)
_SOURCE = re.compile(r"Data source: ([^;\n]+)")
_LINK = re.compile(r"\]\(([^)\s]+)\)")
_DRAWS = re.compile(r"\bplt\.|\bplot_\w+\(|\.plot\(")  # code that draws a figure
_ROW = re.compile(r"^\| (\d\d_\S+) \| [0-9.]+ \| \S+ \| (ok|FAILED: .*) \|$", re.MULTILINE)
NOT_EXECUTED = """No executed notebooks in {folder}: the site shows a course run's outputs and never
runs a notebook itself. Run `make course` first (the course's results), then `make site`; or
`make site PROFILE=quick`, which first runs the quick course (minutes; no real results)."""
INDEX = """# medtl: transfer learning for medical imaging

{intro}

Each notebook's page is the copy that `make course` executed, with every output and figure; the
line under its title says the profile, data source, weights and device it ran with, and when.

| # | notebook | what it covers |
|---|---|---|
{rows}
{missing}
```bash
make course   # run every notebook headless, in order, into runs/notebooks/
make test     # the package tests and every notebook under nbval in the quick profile
```

The course's repository: <https://github.com/{repository}>.
"""


def links():
    """medtl_helpers.course.links, imported when first needed: importing the package imports
    torch, which takes seconds, and the build time printed at the end includes them."""
    from medtl_helpers.course import links

    return links


def run_date(name: str, timings: str, mtime: float) -> str:
    """The day the notebook ran: timings.md's when it lists the notebook and names one day, else
    the executed file's modification time (which copying may change); says which."""
    from medtl_helpers.course.runner import measured_dates

    dates = measured_dates(timings)
    if dates and dates[0] == dates[1] and name in dict(_ROW.findall(timings)):
        return f"{dates[0]} (the date in timings.md)"
    day = datetime.date.fromtimestamp(mtime).isoformat()
    return f"{day} (the executed file's modification time)"


def provenance(notebook: nbformat.NotebookNode) -> dict[str, str]:
    """Profile, weights, device and data source as the notebook printed them ("unknown" when
    it did not): the environment report of its imports cell and its data banner (streams)."""
    found = dict.fromkeys(("profile", "weights", "device", "source"), "unknown")
    texts = [o.get("text", "") for c in notebook.cells for o in c.get("outputs", [])]
    report = next((t for t in texts if len(set(dict(_REPORT.findall(t)))) == 3), "")
    for key, value in _REPORT.findall(report):
        found[key] = short_value(key, value.strip())
    banner = next((m for m in map(_SOURCE.search, texts) if m), None)
    if banner:
        found["source"] = banner.group(1).strip()
    return found


def short_value(key: str, value: str) -> str:
    """'quick (64 px, batch 32, …)', 'none (random initialisation)', 'cpu (…)': the name and
    what the report says of it, without the report's hints on how to change it."""
    if key == "device":
        return value.split(";")[0]
    name, sep, detail = value.partition(": ")
    if not sep or not re.fullmatch(r"[\w-]+", name):
        return re.match(r"[\w-]*", value).group(0) or value
    detail = detail.split(" (")[0] if key == "weights" else detail
    return f"{name} ({detail})"


def executed_with(name: str, notebook: nbformat.NotebookNode, timings: str, mtime: float) -> str:
    """The Markdown cell each notebook page gets under its title."""
    found = provenance(notebook)
    failed = dict(_ROW.findall(timings)).get(name, "ok")
    parts = [
        f"**Executed with** profile {found['profile']}, data source {found['source']}, "
        f"weights {found['weights']}, on device {found['device']}, "
        f"on {run_date(name, timings, mtime)}.",
        "" if failed == "ok" else f"**This run failed**: {failed.removeprefix('FAILED: ')}",
        f"[Open in Colab]({links().colab_url(f'notebooks/{name}.ipynb')}) · "
        f"[download .ipynb]({name}.ipynb) (this executed copy)",
    ]
    return "\n\n".join(part for part in parts if part)


def stage_notebook(path: Path, docs: Path, timings: str) -> str:
    """Copy an executed notebook into docs/notebooks/ with the executed-with cell; return its
    title: the first line of its first cell, without the number."""
    notebook = nbformat.read(path, as_version=4)
    # a fixed id: the same executed copy stages the same file, which mkdocs-jupyter's cache finds
    text = executed_with(path.stem, notebook, timings, path.stat().st_mtime)
    cell = nbformat.v4.new_markdown_cell(text, id="executed-with")
    notebook.cells.insert(1 if notebook.cells else 0, cell)
    nbformat.write(notebook, docs / "notebooks" / path.name)
    outputs = [o for c in notebook.cells for o in c.get("outputs", [])]
    draws = any(_DRAWS.search(c.source) for c in notebook.cells if c.cell_type == "code")
    if draws and not any(key.startswith("image/") for o in outputs for key in o.get("data", {})):
        print(
            f"{path.name}: no figure in its outputs (a kernel run with MPLBACKEND=Agg draws none; "
            "`make course` runs its kernels without it)"
        )
    return re.sub(r"^#\s*(\d\d\s*·\s*)?", "", notebook.cells[0].source.splitlines()[0]).strip()


def markdown_section(text: str, heading: str) -> str:
    """The `## heading` section of a Markdown text, up to the next heading of its level, as a
    page of its own (`# heading`); a `#` line inside a fenced code block is no heading."""
    lines, section, fenced = text.splitlines(), None, False
    for index, line in enumerate(lines):
        fenced ^= line.lstrip().startswith("```")
        if fenced or not line.startswith("## "):
            continue
        if section is not None:
            return "\n".join(lines[section:index]).strip() + "\n"
        if line[3:].strip() == heading:
            section = index
            lines[index] = f"# {heading}"
    if section is None:
        raise ValueError(f"no section `## {heading}`")
    return "\n".join(lines[section:]).strip() + "\n"


def rewrite_links(text: str, source: str, page: str, pages: dict[str, str]) -> str:
    """Relative links of the repository file `source`, copied to the site's `page`: a link to a
    file the site has as a page points at that page, any other one at the file on GitHub."""

    def relink(match: re.Match) -> str:
        target = match.group(1)
        if re.match(r"[a-z]+:|#|/", target):
            return match.group(0)
        path, _, anchor = target.partition("#")
        path = posixpath.normpath(posixpath.join(posixpath.dirname(source), path))
        if path in pages:
            new = posixpath.relpath(pages[path], posixpath.dirname(page) or ".")
        else:
            new = links().github_url(path)
        return f"]({new}{'#' + anchor if anchor else ''})"

    fenced, lines = False, []
    for line in text.splitlines():
        fenced ^= line.lstrip().startswith("```")
        lines.append(line if fenced else _LINK.sub(relink, line))
    return "\n".join(lines) + "\n"


def syllabus_descriptions(readme: str) -> dict[str, str]:
    """Notebook number -> what it covers, from README's Syllabus table."""
    rows = re.findall(r"^\| (\d\d) \| \[[^]]*\]\([^)]*\) \| ([^|]+) \|", readme, re.MULTILINE)
    return {number: text.strip() for number, text in rows}


def index_page(readme: str, staged: dict[str, str], missing: list[str]) -> str:
    """The landing page: README's paragraph above the syllabus, the syllabus, the two commands."""
    described = syllabus_descriptions(readme)
    rows = "\n".join(
        f"| {name[:2]} | [{title}](notebooks/{name}.ipynb) | {described.get(name[:2], '')} |"
        for name, title in staged.items()
    )
    return INDEX.format(
        intro=readme.split("\n## Syllabus", 1)[0].rstrip().split("\n\n")[-1],
        rows=rows,
        missing=f"\nNot executed for this site: {', '.join(missing)}.\n" if missing else "",
        repository=links().REPOSITORY,
    )


def api_pages(docs: Path) -> list[dict[str, str]]:
    """One reference page per subpackage, and one for the modules at the package's top level."""
    subpackages = sorted(p.parent.name for p in PACKAGE.glob("*/__init__.py"))
    loose = sorted(p.stem for p in PACKAGE.glob("*.py") if not p.stem.startswith("__"))
    (docs / "api").mkdir(parents=True)
    nav = []
    for name in subpackages:
        page = f"api/{name}.md"
        (docs / page).write_text(
            f"# medtl_helpers.{name}\n\n::: medtl_helpers.{name}\n    options:\n"
            "      show_submodules: true\n"
        )
        nav.append({name: page})
    modules = "\n".join(f"::: medtl_helpers.{name}\n" for name in loose)
    (docs / "api/top_level.md").write_text(f"# Top-level modules\n\n{modules}")
    return nav + [{"top-level modules": "api/top_level.md"}]


def mkdocs_config(site: Path, notebooks: list[dict], api: list[dict]) -> dict:
    """mkdocs.yml: Material (system fonts: a page loads nothing from elsewhere) with its search,
    notebooks rendered as they were executed, the API reference from the docstrings."""
    python = {"paths": [str(ROOT)], "options": {"docstring_style": None, "show_source": False}}
    python["options"].update(show_root_heading=True, members_order="source")
    theme = {"name": "material", "font": False, "features": ["navigation.sections"]}
    return {
        "site_name": "medtl: transfer learning for medical imaging",
        "site_url": "https://{}.github.io/{}/".format(*links().REPOSITORY.split("/")),
        "repo_url": f"https://github.com/{links().REPOSITORY}",
        **{"docs_dir": "docs", "site_dir": str(site), "theme": theme},
        "markdown_extensions": ["tables", "admonition", "attr_list", {"toc": {"permalink": True}}],
        "plugins": [
            "search",
            {"mkdocs-jupyter": {"execute": False, "include_source": True, "include": ["*.ipynb"]}},
            {"mkdocstrings": {"handlers": {"python": python}}},
        ],
        "nav": [
            {"Home": "index.md"},
            {"Notebooks": notebooks},
            *({title: page} for page, title in TITLES.items()),
            {"API reference": api},
        ],
    }


def stage(executed: Path, stage_dir: Path, site: Path) -> Path:
    """Write every page and mkdocs.yml into `stage_dir`; return mkdocs.yml's path."""
    docs = stage_dir / "docs"
    shutil.rmtree(docs, ignore_errors=True)
    (docs / "notebooks").mkdir(parents=True)
    timings = (executed / "timings.md").read_text() if (executed / "timings.md").is_file() else ""
    staged = {
        path.stem: stage_notebook(path, docs, timings)
        for path in links().numbered_notebooks(executed)
    }
    course = [p.stem for p in links().numbered_notebooks(ROOT / "notebooks")]
    missing = [name for name in course if name not in staged]
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    pages = {**PAGES, **{f"notebooks/{name}.ipynb": f"notebooks/{name}.ipynb" for name in staged}}
    (docs / "index.md").write_text(index_page(readme, staged, missing))
    for source, page in PAGES.items():
        text = (ROOT / source).read_text(encoding="utf-8")
        (docs / page).write_text(rewrite_links(text, source, page, pages))
    data = rewrite_links(markdown_section(readme, "Data"), "README.md", "data.md", pages)
    (docs / "data.md").write_text(data)
    notebooks = [
        {f"{name[:2]} · {title}": f"notebooks/{name}.ipynb"} for name, title in staged.items()
    ]
    config = stage_dir / "mkdocs.yml"
    config.write_text(yaml.safe_dump(mkdocs_config(site, notebooks, api_pages(docs))))
    if missing:
        print(f"not executed, so not on the site: {', '.join(missing)} (make course runs them)")
    return config


def main(argv: list[str] | None = None) -> int:
    start = time.perf_counter()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--executed", type=Path, default=ROOT / "runs" / "notebooks")
    parser.add_argument("--stage", type=Path, default=ROOT / "runs" / "site-src")
    parser.add_argument("--site", type=Path, default=ROOT / "site")
    args = parser.parse_args(argv)
    count = len(links().numbered_notebooks(args.executed))
    if not count:
        print(NOT_EXECUTED.format(folder=args.executed), file=sys.stderr)
        return 2
    config = stage(args.executed, args.stage, args.site.resolve())
    # mkdocs-jupyter caches rendered notebooks in .cache/ under the working folder: runs/site-src
    build = [sys.executable, "-m", "mkdocs", "build", "--strict", "-f", config.name]
    quiet = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}  # Material's notice about its successor
    done = subprocess.run(build, cwd=args.stage, env=quiet)
    seconds = time.perf_counter() - start
    if done.returncode:
        print(f"mkdocs build --strict failed after {seconds:.1f} s", file=sys.stderr)
        return done.returncode
    print(f"built {args.site} from {count} executed notebooks in {seconds:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
