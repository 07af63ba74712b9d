"""The long description of the wheel and the sdist: the README with its relative links made absolute.

On the package index the README's `docs/…` links would point nowhere; here they point at the same files in the
source repository named by `[project.urls] Source` in pyproject.toml. The README itself keeps its relative links,
which work in a clone and on the repository's site.
"""

import re
import tomllib
from pathlib import Path

from setuptools import setup

HERE = Path(__file__).resolve().parent


def absolute_readme() -> str:
    project = tomllib.loads((HERE / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    base = project["urls"]["Source"].rstrip("/") + "/blob/main/"
    text = (HERE / "README.md").read_text(encoding="utf-8")
    return re.sub(r"(\]\()(?![a-z][a-z0-9+.-]*:|#|/)([^)\s]+)\)", lambda m: f"{m[1]}{base}{m[2]})", text)


setup(long_description=absolute_readme(), long_description_content_type="text/markdown")
