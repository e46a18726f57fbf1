"""Debian's Chromium, headless, as every browser test and the dashboard benchmark launch it."""

from __future__ import annotations

import shutil

import pytest

#: No sandbox (containers), no GPU, and nothing that reaches the network on its own.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
MISSING = (
    "Debian's chromium is not installed (apt-get install -y chromium, or make system-packages)"
)


def chromium_or_skip() -> str:
    """The chromium executable; the calling test is skipped where there is none."""
    path = shutil.which("chromium")
    if path is None:
        pytest.skip(MISSING)
    return path


def launch(playwright, executable: str):
    """A headless browser (close it when done)."""
    return playwright.chromium.launch(executable_path=executable, headless=True, args=CHROMIUM_ARGS)
