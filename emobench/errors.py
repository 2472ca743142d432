"""Errors that the CLI turns into one clear line and a non-zero exit, without a traceback, and the
exit codes of the `emobench` command: one meaning each, whatever the subcommand, so that a CI job can
branch on the code without parsing output."""

from __future__ import annotations

import os

EXIT_OK = 0
EXIT_REGRESSION = 1  # a check failed: `compare` found a regression (`audit-keywords`: a leak)
EXIT_BAD_INPUT = 2  # bad input or flag, or runs that cannot be compared (every EmobenchError)
EXIT_SAMPLES_FAILED = 3  # model calls failed after every retry: `run` finished with failed samples,
# or `compare`'s candidate has more than --allow-errors of them


class EmobenchError(Exception):
    """Base class: a user-facing problem (bad input, bad flag, incomparable runs)."""

    exit_code = EXIT_BAD_INPUT


class DataError(EmobenchError):
    """A dataset file is malformed. Always names the file and, where known, the line."""

    def __init__(self, path: str | os.PathLike[str], message: str, line: int | None = None):
        self.path, self.line = str(path), line
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {message}")


class ConfigError(EmobenchError):
    """A flag, model spec, task file or template is invalid."""


class ModelCallError(Exception):
    """A model call failed after every retry; the sample is recorded with outcome `error`."""
