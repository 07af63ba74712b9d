"""Types as a user's type checker sees them: the README's tour and the tutorials pass `mypy --strict`, and the
package passes `mypy -p convscope` with the settings in pyproject.toml, every module checked.

Each run takes 20-60 s on a 2-core CPU (less with mypy's cache from an earlier run).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

pytest.importorskip("mypy", reason="mypy is in the test extra: pip install -e '.[test]'")


def mypy(*argv: str) -> str:
    done = subprocess.run([sys.executable, "-m", "mypy", "--no-error-summary", *argv], cwd=ROOT,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"mypy {' '.join(argv)}:\n{done.stdout[-6000:]}{done.stderr[-2000:]}"
    return done.stdout


def test_a_users_script_from_the_readme_and_the_tutorials_passes_mypy_strict():
    # only the script's own lines are judged; convscope is read for its signatures
    mypy("--strict", "--follow-imports=silent", "tests/typing/user_script.py")


def test_the_package_passes_mypy():
    if not (ROOT / "pyproject.toml").is_file():
        pytest.skip("needs the source tree")
    mypy("-p", "convscope")
