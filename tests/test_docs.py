"""The documentation: the site builds with ``mkdocs build --strict`` (every page, link, picture and API entry
resolves), the tutorial notebooks run headless from start to end, and every public name has a docstring."""

from __future__ import annotations

import importlib
import inspect
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "examples").glob("*.ipynb"))
PACKAGES = ["convscope", "convscope.models", "convscope.inspection", "convscope.attribution", "convscope.data",
            "convscope.scan", "convscope.synthesis", "convscope.analysis", "convscope.render", "convscope.targets",
            "convscope.hooks", "convscope.gradients", "convscope.images", "convscope.logs", "convscope.progress"]


def test_the_site_builds_strictly(tmp_path):
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings_handlers.python")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-4000:]
    site = tmp_path / "site"
    reference = (site / "reference" / "attribution" / "index.html").read_text()
    assert 'id="convscope.attribution.GradCAM"' in reference and "spatial mean" in reference
    assert "https://arxiv.org/abs/1610.02391" in reference  # each method's paper
    tutorial = (site / "tutorials" / "attribution_on_your_model" / "index.html").read_text()
    assert "data:image/png;base64," in tutorial  # the stored outputs are shown
    assert "convscope predict" in (site / "cli" / "index.html").read_text()
    _the_site_reads_as_meant(site)
    _every_link_resolves(site)


def _every_link_resolves(site: Path) -> None:
    """A link checker for the built site: every link inside it (pages, pictures, notebooks' pages, the API
    reference) reaches a file that is there, and its ``#anchor`` an element of that page. Links to other hosts
    are not fetched (the tests run offline); they must at least be https."""
    import re
    from urllib.parse import unquote, urlsplit

    pages = {path: path.read_text() for path in site.rglob("*.html")}
    ids = {path: set(re.findall(r'\bid="([^"]+)"', text)) for path, text in pages.items()}
    broken, insecure = [], []
    for page, text in pages.items():
        for link in re.findall(r'<(?:a|img|link|script)\b[^>]*?\b(?:href|src)="([^"]*)"', text):
            parts = urlsplit(link)
            if parts.scheme in ("http", "https") or link.startswith("//"):
                insecure += [link] if parts.scheme == "http" and "localhost" not in link else []
                continue
            if parts.scheme in ("mailto", "data", "javascript") or not (parts.path or parts.fragment):
                continue
            path = unquote(parts.path)
            target = ((site / path.lstrip("/")) if path.startswith("/") else (page.parent / path)).resolve() \
                if path else page
            if target.is_dir():
                target = target / "index.html"
            fragment = unquote(parts.fragment)
            if not target.is_file() or (fragment and target in ids and fragment not in ids[target]):
                broken.append(f"{page.relative_to(site)} → {link}")
    assert not broken, f"{len(broken)} broken links, e.g. {broken[:5]}"
    assert not insecure, f"plain-http links: {sorted(set(insecure))[:5]}"


def _the_site_reads_as_meant(site: Path) -> None:
    """No literal reST role, no fetch from another host, a CLI page that fits its column, a complete API index."""
    import html
    import re

    import convscope

    pages = {path: path.read_text() for path in site.rglob("*.html")}
    roles = {str(p.relative_to(site)): re.findall(r":(?:func|class|meth|attr|data|mod):<code>", text)
             for p, text in pages.items()}
    assert not any(roles.values()), {p: len(r) for p, r in roles.items() if r}
    fetched = re.compile(r'<(?:link|script|img|iframe)\b[^>]*\b(?:href|src)="(?:https?:)?//[^"]*"')
    remote = {str(p.relative_to(site)): fetched.findall(text) for p, text in pages.items()}
    assert not any(remote.values()), {p: r[:2] for p, r in remote.items() if r}
    assert "fonts.googleapis" not in "".join(pages.values())
    reference = (site / "reference" / "attribution" / "index.html").read_text()
    assert re.search(r'<a class="autorefs autorefs-internal"[^>]*><code>compare</code></a>', reference)
    cli = (site / "cli" / "index.html").read_text()
    lines = [html.unescape(re.sub("<[^>]+>", "", line))
             for block in re.findall(r"<code>(.*?)</code>", cli, re.S) for line in block.split("\n")]
    assert max(map(len, lines)) <= 80, [line for line in lines if len(line) > 80][:3]
    index = (site / "reference" / "index.html").read_text()
    linked = set(re.findall(r'<a class="autorefs autorefs-internal"[^>]*><code>(\w+)</code></a>', index))
    assert set(convscope.__all__) <= linked, sorted(set(convscope.__all__) - linked)
    assert "…" not in index.split('class="md-content"', 1)[-1].split("<table", 1)[-1].split("</table>", 1)[0]


def test_the_stored_notebooks_hold_their_outputs_and_no_error():
    assert [p.stem for p in NOTEBOOKS] == ["attribution_on_your_model", "scanning_a_data_set", "synthesis"]
    for path in NOTEBOOKS:
        cells = [c for c in json.loads(path.read_text())["cells"] if c["cell_type"] == "code"]
        assert all(c.get("outputs") for c in cells[1:] if c["source"]), f"{path.name}: run scripts/notebooks"
        assert not any(o["output_type"] == "error" for c in cells for o in c["outputs"]), path.name


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_the_tutorial_runs_headless(path, tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    notebook = nbformat.read(path, as_version=4)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # the kernel's torch: one thread (small work, shared cores)
    nbclient.NotebookClient(notebook, timeout=900, kernel_name="python3", coalesce_streams=True,
                            resources={"metadata": {"path": str(tmp_path)}}).execute()  # raises on an error
    outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs]
    assert any("image/png" in o.get("data", {}) or "text/html" in o.get("data", {}) for o in outputs)
    streams = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert "IProgress" not in streams


def public_names():
    """Every class and function in the packages' ``__all__``, and the public methods and properties of the classes."""
    for package in PACKAGES:
        module = importlib.import_module(package)
        for name in getattr(module, "__all__", []):
            value = getattr(module, name)
            if not (inspect.isclass(value) or inspect.isfunction(value)):
                continue
            yield f"{package}.{name}", value
            if inspect.isclass(value):
                for member, attribute in vars(value).items():
                    function = attribute.fget if isinstance(attribute, property) else getattr(attribute, "__func__",
                                                                                            attribute)
                    if not member.startswith("_") and inspect.isfunction(function):
                        yield f"{package}.{name}.{member}", function


def test_every_public_name_has_a_docstring():
    names = dict(public_names())
    missing = [name for name, value in names.items()
               if not value.__doc__ or (inspect.isclass(value) and value.__doc__.startswith(f"{value.__name__}("))]
    assert len(names) > 300 and not missing, f"public names without a docstring: {missing}"
