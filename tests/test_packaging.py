"""The package as a user gets it: build the sdist and the wheel, install the wheel into a fresh virtual
environment and run the command there, away from the source tree.

The fresh environment sees the third-party packages of the test environment through a path entry (torch is
a gigabyte to install again), but neither convscope itself nor its source: the wheel must carry everything.
Building and installing take about 10 s of CPU, the three commands about 20 s.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import sysconfig
import tarfile
import zipfile
from pathlib import Path

import pytest
from PIL import Image

import convscope

ROOT = Path(__file__).resolve().parents[1]


def run(*argv: str | Path, cwd: Path, timeout: float = 600) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    done = subprocess.run([str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{argv} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> Path:
    if not (ROOT / "pyproject.toml").is_file():
        pytest.skip("needs the source tree")
    out = tmp_path_factory.mktemp("dist")
    run(sys.executable, "-m", "build", "--no-isolation", "--outdir", out, ROOT, cwd=out)
    return out


def test_the_wheel_carries_the_licence_types_weights_and_metadata(dist):
    wheel = next(dist.glob("convscope-*.whl"))
    assert wheel.name.startswith(f"convscope-{convscope.__version__}-")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = archive.read(f"convscope-{convscope.__version__}.dist-info/METADATA").decode()
    assert "convscope/py.typed" in names
    assert f"convscope-{convscope.__version__}.dist-info/licenses/LICENSE" in names
    assert {"convscope/models/weights/fashion_cnn.pt"} <= names
    assert not any(name.startswith(("tests/", "docs/")) for name in names)
    assert "License-Expression: MIT" in metadata and "Classifier: Typing :: Typed" in metadata
    assert "Provides-Extra: docs" in metadata and "Provides-Extra: notebooks" in metadata
    urls = dict(line.removeprefix("Project-URL: ").split(", ", 1) for line in metadata.splitlines()
                if line.startswith("Project-URL: "))
    assert {"Homepage", "Documentation", "Source", "Issues"} <= set(urls), urls
    assert all(url.startswith("https://") for url in urls.values()), urls
    # the long description (the README) on the index: every link absolute, none left pointing at `docs/…`
    description = metadata.split("\n\n", 1)[1]
    assert "Content-Type: text/markdown" in metadata and "## A short tour" in description
    links = re.findall(r"\]\(([^)]+)\)", description)
    assert links and all(link.startswith(("https://", "#")) for link in links), links
    assert f"{urls['Source']}/blob/main/docs/getting-started.md" in links


def test_the_sdist_holds_what_the_readme_links_to(dist):
    sdist = next(dist.glob("convscope-*.tar.gz"))
    with tarfile.open(sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    assert {"LICENSE", "README.md", "pyproject.toml", "mkdocs.yml"} <= names
    links = re.findall(r"\]\((?!https?://|#)([^)#]+)", (ROOT / "README.md").read_text())
    assert links, "the README links to the documentation"
    missing = [link for link in links if link.rstrip("/") not in names]
    assert not missing, f"README links missing from the sdist: {missing}"
    assert any(name.startswith("tests/test_") for name in names)


def test_the_wheel_works_in_a_fresh_environment(dist, tmp_path):
    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path)
    python = venv / "bin" / "python"
    site = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=tmp_path).strip())
    # the test environment's third-party packages, without convscope and its editable-install hooks
    shared = tmp_path / "shared"
    shared.mkdir()
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if not entry.name.lower().startswith(("convscope", "__editable__", "_convscope")):
            (shared / entry.name).symlink_to(entry)
    (site / "shared-packages.pth").write_text(f"{shared}\n")
    assert "ModuleNotFoundError" in subprocess.run([python, "-c", "import convscope"], cwd=tmp_path,
                                                   capture_output=True, text=True).stderr

    torch_before = run(python, "-c", "import torch; print(torch.__version__, torch.__file__)", cwd=tmp_path)
    wheel = next(dist.glob("convscope-*.whl"))
    # dependencies resolved as a user's pip resolves them, with nothing to download: the torch and torchvision
    # already there must satisfy the wheel's ranges, else pip stops here ("No matching distribution")
    run(sys.executable, "-m", "pip", "--python", python, "install", "-q", "--no-index", "--find-links", dist, wheel,
        cwd=tmp_path)
    assert run(python, "-c", "import torch; print(torch.__version__, torch.__file__)", cwd=tmp_path) == torch_before
    # every dependency the wheel declares is there, at a version it accepts
    check = ("import importlib.metadata as m; from packaging.requirements import Requirement; "
             "reqs = [Requirement(r) for r in m.requires('convscope') if 'extra ==' not in r]; "
             "bad = [str(r) for r in reqs if m.version(r.name) not in r.specifier]; print('unmet', bad); "
             "import convscope; print(convscope.__file__)")
    report = run(python, "-c", check, cwd=tmp_path)
    assert "unmet []" in report and str(site) in report

    command = venv / "bin" / "convscope"
    assert run(command, "--version", cwd=tmp_path).strip() == f"convscope {convscope.__version__}"
    assert "tiger cat" in run(command, "predict", "sample:chelsea", "-k", "3", "--device", "cpu", cwd=tmp_path)
    run(command, "filters", "--out", tmp_path / "figures", "--device", "cpu", "--quiet", cwd=tmp_path)
    [written] = (tmp_path / "figures").glob("filters_*.png")
    with Image.open(written) as figure:  # 32 colour tiles, not blank
        assert min(figure.size) > 100 and len(figure.convert("RGB").getcolors(maxcolors=1 << 20) or [0] * 99) > 50
