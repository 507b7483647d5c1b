"""Shared fixtures: a clean STREAMWATCH_* environment for every test."""
from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith("STREAMWATCH_"):
            monkeypatch.delenv(name)
    yield
