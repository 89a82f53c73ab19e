"""Errors that reach the user as one clear line, never as a traceback."""

from __future__ import annotations


class FlowsentinelError(Exception):
    """An error whose message is written for the user (the CLI prints it and exits non-zero)."""

    exit_code: int = 1


class InputError(FlowsentinelError):
    """Bad input: a file that cannot be read, a missing column, a data set that does not match."""

    exit_code = 2

    def __init__(self, message: str, *, path: object | None = None) -> None:
        self.path = None if path is None else str(path)
        super().__init__(f"{self.path}: {message}" if self.path else message)


class LimitError(InputError):
    """Input larger than a configured limit (decompressed bytes, rows, packets): the work was
    stopped as soon as the limit was passed, not after reading everything."""


class ModelError(FlowsentinelError):
    """A model that cannot be found or loaded (wrong URI, empty store, broken artefact)."""

    exit_code = 4
