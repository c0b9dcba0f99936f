"""Storages: URL resolution, redaction, connection (SQLite, PostgreSQL, the gRPC proxy).

``open_storage`` is the one place a storage is made. PostgreSQL gets ``pool_pre_ping`` and a
pool sized for one worker (the main thread and its heartbeat); SQLite gets WAL and a busy
timeout so that several local workers share one file; ``grpc://HOST:PORT`` reaches
``mtlsearch proxy``.
"""

from __future__ import annotations

import os
import sqlite3
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mtlsearch._liveness import retry_callback
from mtlsearch.errors import StorageError, first_line

if TYPE_CHECKING:
    import optuna

DEFAULT_STORAGE = "sqlite:///mtlsearch.db"
GRPC_SCHEME = "grpc://"
SQLITE_BUSY_TIMEOUT_S = 60
POOL_SIZE, POOL_OVERFLOW = 2, 1  # per worker process: the main thread and the heartbeat thread


@dataclass(frozen=True)
class Heartbeat:
    """How often a worker proves it is alive, and how long silence is tolerated."""

    interval: int = 10
    grace: int = 60

    def __post_init__(self) -> None:
        if self.interval < 1 or self.grace <= self.interval:
            raise StorageError(
                f"heartbeat interval {self.interval} s and grace period {self.grace} s: "
                "use an interval of at least 1 s and a grace period longer than it"
            )


def resolve_url(storage: str | None) -> str:
    return storage or os.environ.get("OPTUNA_STORAGE") or DEFAULT_STORAGE


def redact(url: str) -> str:
    """The URL with any password hidden, for messages and the terminal."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    if url.startswith(GRPC_SCHEME):
        return url
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url.split("@")[-1] if "@" in url else url


def _engine_kwargs(url: str, pool_size: int) -> dict[str, object]:
    if url.startswith("sqlite"):
        # Wait for a writer instead of failing with "database is locked".
        return {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT_S}}
    return {"pool_pre_ping": True, "pool_size": pool_size, "max_overflow": POOL_OVERFLOW}


def _use_wal(path: str) -> None:
    """Readers no longer block the writer. The mode is stored in the file, so this runs once."""
    if not os.path.exists(path) or os.path.getsize(path) == 0:
        with sqlite3.connect(path, timeout=SQLITE_BUSY_TIMEOUT_S) as con:
            con.execute("PRAGMA journal_mode=WAL")


def parse_grpc(url: str) -> tuple[str, int]:
    host, _, port = url.removeprefix(GRPC_SCHEME).rstrip("/").rpartition(":")
    if not host or not port.isdigit():
        raise StorageError(f"malformed proxy URL {url!r}: use grpc://HOST:PORT, e.g. grpc://10.0.0.5:13000")
    return host, int(port)


def _open_grpc(url: str) -> optuna.storages.BaseStorage:
    host, port = parse_grpc(url)
    try:
        from optuna.storages import GrpcStorageProxy

        storage = GrpcStorageProxy(host=host, port=port)
        storage.wait_server_ready(timeout=30)
    except ImportError:
        raise StorageError("grpc:// storages need grpcio: pip install 'mtlsearch[grpc]'") from None
    except TimeoutError:
        raise StorageError(f"no proxy answers at {url} within 30 s: start 'mtlsearch proxy' there or fix --storage") from None
    return storage


def _stale_callback_arg() -> str:
    import inspect

    import optuna

    params = inspect.signature(optuna.storages.RDBStorage).parameters
    return "heartbeat_stale_trial_callback" if "heartbeat_stale_trial_callback" in params else "failed_trial_callback"


def open_storage(
    url: str, *, heartbeat: Heartbeat | None = None, pool_size: int = POOL_SIZE
) -> optuna.storages.BaseStorage:
    """The storage at ``url``; bad or unreachable URLs raise ``StorageError``.

    With ``heartbeat`` (workers), RDB storages record Optuna's heartbeats, and trials that fall
    silent are failed and retried once with the same allocation.
    """
    if url.startswith(GRPC_SCHEME):
        return _open_grpc(url)
    import optuna
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

    shown = redact(url)
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StorageError(
            f"malformed storage URL {shown!r}: use e.g. sqlite:///mtlsearch.db, "
            "postgresql+psycopg://user@host/db or grpc://host:13000"
        ) from None
    if parsed.drivername.startswith("sqlite") and parsed.database not in (None, "", ":memory:"):
        folder = os.path.dirname(os.path.abspath(parsed.database))
        if not os.path.isdir(folder):
            raise StorageError(f"cannot create {shown}: folder {folder} does not exist; create it or fix --storage")
        _use_wal(parsed.database)
    beats: dict[str, object] = {}
    if heartbeat is not None:
        beats = {
            "heartbeat_interval": heartbeat.interval,
            "grace_period": heartbeat.grace,
            _stale_callback_arg(): retry_callback(),
        }
    try:
        storage = optuna.storages.RDBStorage(url, engine_kwargs=_engine_kwargs(url, pool_size), **beats)
    except (NoSuchModuleError, ImportError, ModuleNotFoundError) as exc:
        raise StorageError(f"unsupported storage URL {shown!r} ({exc}): use sqlite:///, postgresql+psycopg:// or grpc://") from None
    except (SQLAlchemyError, OSError) as exc:
        raise StorageError(f"cannot reach storage {shown} ({first_line(exc)}): check the URL and that the server is running") from None
    if parsed.drivername.startswith("sqlite"):
        _begin_immediate(storage.engine)
    return storage


def _begin_immediate(engine: object) -> None:
    """Every SQLite transaction takes the write lock when it begins.

    Optuna's RDB storage reads, then writes, in one transaction, relying on ``SELECT ... FOR
    UPDATE``, which SQLite ignores: two workers could both pop the same waiting trial. Taking
    the lock up front makes each transaction atomic; the busy timeout queues the others.
    """
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: sqlite3.Connection, record: object) -> None:
        dbapi_connection.isolation_level = None  # pysqlite must not begin on its own

    @event.listens_for(engine, "begin")
    def _begin(connection: object) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")  # type: ignore[attr-defined]

    engine.dispose()  # type: ignore[attr-defined]  # pooled connections predate the listeners
