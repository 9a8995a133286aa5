"""The Colab setup cell, for real: install the package as the cell does, from this repository at
this commit, into a fresh virtual environment, and import everything the notebooks import.

No network: the environment sees the dependencies already installed here (as Colab has torch,
torchvision and the rest preinstalled), pip installs the package with --no-deps and without
build isolation, and the test then checks every declared requirement against what is there.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from medtl_helpers.course import links

ROOT = Path(__file__).resolve().parents[1]

CHECK = """
import importlib, importlib.metadata as md, json, sys
from packaging.requirements import Requirement
modules = json.loads(sys.argv[1])
for name in modules:
    importlib.import_module(name)
import medtl_helpers
missing = [r for r in md.requires("medtl_helpers") or [] if "extra ==" not in r
           and md.version(Requirement(r).name) not in Requirement(r).specifier]
print(json.dumps({"file": medtl_helpers.__file__, "version": medtl_helpers.__version__,
                  "missing": missing, "imported": len(modules)}))
"""


def notebook_imports() -> list[str]:
    """Every module the course notebooks import, from their code cells."""
    names = set()
    for path in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb")):
        for cell in json.loads(path.read_text())["cells"]:
            if cell["cell_type"] != "code":
                continue
            source = "".join(cell["source"])
            lines = [
                line for line in source.splitlines() if not line.lstrip().startswith(("%", "!"))
            ]
            for node in ast.walk(ast.parse("\n".join(lines))):
                if isinstance(node, ast.Import):
                    names |= {alias.name for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    names.add(node.module)
    return sorted(names)


def git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout.strip()


@pytest.mark.skipif(not (ROOT / ".git").exists(), reason="needs the git repository")
def test_the_setup_cell_installs_this_commit_and_every_notebook_import_works(tmp_path):
    commit = git("rev-parse", "HEAD")
    assert links.install_spec().startswith("medtl_helpers @ git+https://github.com/")
    # The cell's form, from this repository ("localhost": pip 23's URL check wants a host)
    spec = f"medtl_helpers @ git+file://localhost{ROOT}@{commit}"
    venv = tmp_path / "colab"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    # The preinstalled packages: this environment's site-packages, after the venv's own.
    site = Path(
        subprocess.check_output(
            [python, "-c", "import site; print(site.getsitepackages()[0])"], text=True
        ).strip()
    )
    (site / "preinstalled.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {**os.environ, "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    install = [python, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", spec]
    done = subprocess.run(install, capture_output=True, text=True, env=env, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    modules = notebook_imports()
    assert "medtl_helpers" in modules and "torchvision.models" in modules
    check = subprocess.run(
        [python, "-c", CHECK, json.dumps(modules)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**env, "MPLBACKEND": "Agg"},
    )
    assert check.returncode == 0, check.stderr[-2000:]
    result = json.loads(check.stdout.strip().splitlines()[-1])
    assert result["file"].startswith(str(venv))  # the installed copy, not this working tree
    assert result["version"] == links.release_tag().removeprefix("v")
    assert result["missing"] == [] and result["imported"] == len(modules)
