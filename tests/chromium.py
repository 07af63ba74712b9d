"""Debian's Chromium driven by Playwright, as the browser tests use it (Playwright's own browser download is not
needed): where it is, the flags it runs with, and a skip mark for machines without it."""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("CONVSCOPE_CHROMIUM", "/usr/bin/chromium")
ARGS = ("--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync")

needs_chromium = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                    reason=f"no Chromium at {CHROMIUM} (scripts/setup installs Debian's chromium)")


def launched(extra_args: Sequence[str] = ()) -> Iterator:
    """A running Chromium for a module-scoped fixture (``yield from launched()``), closed afterwards."""
    from playwright import sync_api

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[*ARGS, *extra_args])
        yield browser
        browser.close()
