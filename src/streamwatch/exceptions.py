"""The error tree. Callers catch the narrowest class they can handle; the CLI maps them to exit codes.

    StreamwatchError                 exit 1
    ├── ConfigError                  exit 2  a config/ or detectors/ file is wrong (file: key: why)
    └── InputError                   exit 2  an input file or body cannot be read as samples
"""
from __future__ import annotations

__all__ = ["StreamwatchError", "ConfigError", "InputError"]


class StreamwatchError(Exception):
    exit_code = 1


class ConfigError(StreamwatchError):
    """Carries every problem found, each already located as `file: key path: value: why`."""
    exit_code = 2

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class InputError(StreamwatchError):
    exit_code = 2
