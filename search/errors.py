"""The exceptions of mtlsearch. The CLI turns every ``UsageError`` into one line and exit 2, any other into one line and exit 1."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

__all__ = [
    "DatasetError",
    "MtlsearchError",
    "SearchStalledError",
    "SettingsMismatchError",
    "StorageError",
    "StorageUnavailableError",
    "TrainingDivergedError",
    "UsageError",
    "first_line",
    "writing",
]


class MtlsearchError(Exception):
    """Base class of every error mtlsearch raises on purpose."""


class UsageError(MtlsearchError):
    """Bad input: the message names the problem and the fix, in one line."""


class StorageError(UsageError):
    """The storage URL is malformed or the database cannot be reached."""


class SettingsMismatchError(UsageError):
    """A study was joined with settings that differ from the ones it was created with."""


class DatasetError(UsageError):
    """A dataset is missing, empty or unreadable."""


class StorageUnavailableError(MtlsearchError):
    """The database went away mid-run and did not come back within the worker's patience."""


class TrainingDivergedError(MtlsearchError):
    """Training diverged in several trials in a row: the worker stops instead of failing forever."""


class SearchStalledError(MtlsearchError):
    """The sampler keeps proposing allocations that were trained before: nothing new to try."""


DISK_FULL = ("disk is full", "no space left")  # what SQLite and the OS say when a write finds no room


def disk_trouble(reason: str) -> str | None:
    """``full`` when a storage error says the disk is full, ``failing`` for SQLite's "disk I/O
    error" (a full disk under its WAL files, or a failing one), else None."""
    lowered = reason.lower()
    if any(words in lowered for words in DISK_FULL):
        return "full"
    return "failing" if "disk i/o error" in lowered else None


def first_line(exc: BaseException) -> str:
    """The first line of what an exception (or the driver error beneath it) says."""
    cause = getattr(exc, "orig", None) or exc.__cause__ or exc
    text = str(getattr(cause, "orig", None) or cause).strip()
    return text.splitlines()[0] if text else type(cause).__name__


@contextlib.contextmanager
def writing(path: Path) -> Iterator[None]:
    """Turn the operating system's refusal to write ``path`` into one line naming why."""
    try:
        yield
    except IsADirectoryError:
        raise UsageError(f"cannot write {path}: it is a folder; pass a file name, or the folder to write into") from None
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise UsageError(f"cannot write {path} ({reason}): choose another --out") from None
