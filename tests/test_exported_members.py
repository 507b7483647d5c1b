"""Every module says what it exports (`__all__`), and every exported name exists."""
from __future__ import annotations

import importlib
import pkgutil

import pytest

import streamwatch

MODULES = sorted(m.name for m in pkgutil.walk_packages(streamwatch.__path__, "streamwatch.")
                 if not m.name.endswith("__main__"))


@pytest.mark.parametrize("name", MODULES)
def test_module_declares_all(name: str) -> None:
    mod = importlib.import_module(name)
    if name.endswith(("__init__",)) or hasattr(mod, "__path__"):   # packages: docstring only
        assert mod.__doc__, f"{name}: a package says what it holds"
        return
    exported = getattr(mod, "__all__", None)
    assert exported is not None, f"{name} has no __all__"
    missing = [n for n in exported if not hasattr(mod, n)]
    assert not missing, f"{name}.__all__ names what it lacks: {missing}"


def test_public_api() -> None:
    assert {"AlertEvent", "Batch", "Config", "Pipeline", "load_config"} <= set(streamwatch.__all__)
    assert streamwatch.__version__
