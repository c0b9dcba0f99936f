"""Storage URLs: resolution (option, ``OPTUNA_STORAGE``, default), redaction, connection."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from mtlsearch.errors import StorageError

if TYPE_CHECKING:
    import optuna

DEFAULT_STORAGE = "sqlite:///mtlsearch.db"


def resolve_url(storage: str | None) -> str:
    return storage or os.environ.get("OPTUNA_STORAGE") or DEFAULT_STORAGE


def redact(url: str) -> str:
    """The URL with any password hidden, for messages and the terminal."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url.split("@")[-1] if "@" in url else url


def _engine_kwargs(url: str) -> dict[str, object]:
    if url.startswith("sqlite"):
        # Wait for a writer instead of failing with "database is locked".
        return {"connect_args": {"timeout": 60}}
    return {"pool_pre_ping": True, "pool_size": 2, "max_overflow": 2}


def open_storage(url: str) -> optuna.storages.RDBStorage:
    """An Optuna RDB storage on ``url``; bad or unreachable URLs raise ``StorageError``."""
    import optuna
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

    shown = redact(url)
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StorageError(
            f"malformed storage URL {shown!r}: use e.g. sqlite:///mtlsearch.db or "
            "postgresql+psycopg://user@host/db"
        ) from None
    if parsed.drivername.startswith("sqlite") and parsed.database not in (None, "", ":memory:"):
        folder = os.path.dirname(os.path.abspath(parsed.database))
        if not os.path.isdir(folder):
            raise StorageError(f"cannot create {shown}: folder {folder} does not exist; create it or fix --storage")
    try:
        return optuna.storages.RDBStorage(url, engine_kwargs=_engine_kwargs(url))
    except (NoSuchModuleError, ImportError, ModuleNotFoundError) as exc:
        raise StorageError(f"unsupported storage URL {shown!r} ({exc}): use sqlite:/// or postgresql+psycopg://") from None
    except (SQLAlchemyError, OSError) as exc:
        reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
        raise StorageError(f"cannot reach storage {shown} ({reason}): check the URL and that the server is running") from None
