"""Shared fixtures: a clean STREAMWATCH_* environment for every test; the numba kernels compiled
(or loaded from their cache) once per session, before any test's clock starts."""
from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True, scope="session")
def compiled_kernels() -> None:
    """In a fresh clone every kernel compiles on first use (tens of seconds on 2 busy cores);
    without this the first test that starts a live server pays for it inside its readiness
    deadline. The service's own warm-up is the list of kernels."""
    from streamwatch.config.load import load_config
    from streamwatch.service.core import _warm_up
    _warm_up(load_config(env={}))


@pytest.fixture(autouse=True)
def clean_environ(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith("STREAMWATCH_"):
            monkeypatch.delenv(name)
    yield
