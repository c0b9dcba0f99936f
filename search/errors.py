"""The exceptions of mtlsearch. The CLI turns every ``UsageError`` into one line and exit 2, any other into one line and exit 1."""

from __future__ import annotations

__all__ = ["MtlsearchError", "UsageError", "StorageError", "SettingsMismatchError", "DatasetError", "StorageUnavailableError", "SamplerStalledError"]


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


class SamplerStalledError(MtlsearchError):
    """The sampler keeps proposing over-budget candidates: it does not learn the budget."""
