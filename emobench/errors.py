"""Errors that the CLI turns into one clear line and a non-zero exit, without a traceback."""

from __future__ import annotations


class EmobenchError(Exception):
    """Base class: a user-facing problem (bad input, bad flag, incomparable runs)."""

    exit_code = 2


class DataError(EmobenchError):
    """A dataset file is malformed. Always names the file and, where known, the line."""

    def __init__(self, path: str, message: str, line: int | None = None):
        self.path, self.line = str(path), line
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {message}")


class ConfigError(EmobenchError):
    """A flag, model spec, task file or template is invalid."""


class ModelCallError(Exception):
    """A model call failed after every retry; the sample is recorded with outcome `error`."""
