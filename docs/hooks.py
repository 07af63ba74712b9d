"""MkDocs hooks: the tutorial notebooks (examples/*.ipynb, with their stored outputs) and the command-line
reference become pages at build time, so the site always shows what the notebooks and the parser hold."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "examples"


def on_files(files: Files, config) -> Files:  # noqa: ANN001 - MkDocs' signature
    for notebook in sorted(NOTEBOOKS.glob("*.ipynb")):
        files.append(File.generated(config, f"tutorials/{notebook.stem}.md", content=notebook_page(notebook)))
    files.append(File.generated(config, "cli.md", content=cli_page()))
    return files


def on_page_markdown(markdown: str, page, config, files) -> str:  # noqa: ANN001 - MkDocs' signature
    """``<!-- attribution-methods -->`` becomes the table of methods, their names and their papers."""
    if "<!-- attribution-methods -->" in markdown:
        markdown = markdown.replace("<!-- attribution-methods -->", attribution_table())
    if "<!-- api-index -->" in markdown:
        markdown = markdown.replace("<!-- api-index -->", api_index())
    return markdown


def api_index() -> str:
    """Every name of ``convscope.__all__``, grouped by the area that defines it, each linked to its entry."""
    import importlib
    import sys

    import convscope

    areas: dict[str, list[str]] = {}
    for name in sorted(convscope.__all__, key=str.lower):
        thing = getattr(convscope, name)
        module = getattr(thing, "__module__", None) or _defining_module(name, thing)
        area = module.split(".")[1]
        package = importlib.import_module(f"convscope.{area}")
        exported = getattr(package, name, None) is thing and f"convscope.{area}.{name}" not in sys.modules
        path = f"convscope.{area}.{name}" if exported else f"{module}.{name}"  # a module of that name wins
        link = f'<autoref identifier="{path}" optional><code>{name}</code></autoref>'
        areas.setdefault(area, []).append(link)
    rows = ["| area | names |", "|---|---|"]
    rows += [f"| {area} | {', '.join(links)} |" for area, links in sorted(areas.items())]
    return "\n".join(rows)


def attribution_table() -> str:
    """One row per method of ``convscope.attribution.METHODS``: name, class and paper, from the classes themselves."""
    from convscope.attribution.registry import METHODS

    rows = ["| `method=` | class | paper |", "|---|---|---|"]
    for name, method in METHODS.items():
        rows.append(f"| `{name}` | [`{method.__name__}`][convscope.attribution.{method.__name__}] | "
                    f"[{method.paper}]({method.paper}) |")
    return "\n".join(rows)


def _defining_module(name: str, thing: object) -> str:
    """The convscope area package that exports ``thing`` (for constants, which carry no ``__module__``)."""
    import sys

    for module_name, module in sorted(sys.modules.items()):
        area = module_name.split(".")
        if len(area) == 2 and area[0] == "convscope" and area[1] not in {"cli", "demo", "explore"} \
                and getattr(module, name, None) is thing:
            return module_name
    raise ValueError(f"convscope.{name} is exported by no convscope area package")


def notebook_page(path: Path) -> str:
    """Markdown for a notebook: its markdown cells, its code, and its stored outputs (text, tables, pictures)."""
    notebook = json.loads(path.read_text(encoding="utf-8"))
    title, parts = path.stem.replace("_", " "), []
    for cell in notebook["cells"]:
        source = "".join(cell["source"])
        if cell["cell_type"] == "markdown":
            if not parts and source.startswith("# "):  # the notebook's title heads the page
                heading, _, source = source.partition("\n")
                title = heading[2:].strip()
            parts.append(source)
        elif cell["cell_type"] == "code":
            parts.append(f"```python\n{source}\n```")
            parts.extend(_output(output) for output in cell.get("outputs", []))
    note = (f"<small>The notebook `examples/{path.name}` with its stored outputs (computed on a CPU); run it "
            f"yourself with `jupyter lab examples/{path.name}`.</small>")
    return "\n\n".join([f"# {title}", note, *(p for p in parts if p.strip())]) + "\n"


def _output(output: dict) -> str:
    kind = output["output_type"]
    if kind == "error":
        raise ValueError(f"a stored notebook output is an error: {output.get('ename')}: {output.get('evalue')}")
    if kind == "stream":
        text = _strip_ansi("".join(output["text"]))
        lines = [line.rsplit("\r", 1)[-1] for line in text.replace("\r\n", "\n").split("\n")]
        lines = [line for line in lines if line.strip()]  # a bar keeps its last state; a cleared bar, nothing
        return "```text\n" + "\n".join(lines) + "\n```" if lines else ""
    data = output.get("data", {})
    if "image/png" in data:
        png = data["image/png"].replace("\n", "")
        return f'<img alt="output" src="data:image/png;base64,{png}" style="max-width:100%">'
    if "text/html" in data:
        return '<div class="notebook-output">\n' + "".join(data["text/html"]) + "\n</div>"
    if "text/plain" in data:
        return "```text\n" + _strip_ansi("".join(data["text/plain"])) + "\n```"
    return ""


def _strip_ansi(text: str) -> str:
    return re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", text)


def cli_page() -> str:
    """Every command's ``--help``, generated from the parser itself."""
    from convscope.cli import build_parser
    from convscope.cli.conventions import commands

    previous = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "78"  # the same line width wherever the site is built, inside the code column
    try:
        parser = build_parser()
        helps = [(name, sub.format_help().strip()) for name, sub in commands(parser)]
        top = parser.format_help().strip()
    finally:
        if previous is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = previous
    parts = ["# Command line", "",
             "`convscope COMMAND --help` prints what follows; this page is generated from the same parser. "
             "Every command takes `-q/--quiet` (only warnings and errors, no progress bars) and `-v/--verbose` "
             "(also debug messages); `convscope --version` prints the version. Flags that take several values "
             "are plural (`--channels 0 7 20`, `--layers`, `--targets`), batch sizes are `--batch-size`; the "
             "earlier spellings still work, with a warning.", "", "```text", top, "```"]
    for name, text in helps:
        parts += ["", f"## {name}", "", "```text", text, "```"]
    return "\n".join(parts) + "\n"
