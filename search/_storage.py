"""Storages: URL resolution, redaction, connection (SQLite, PostgreSQL, the gRPC proxy).

``open_storage`` is the one place a storage is made. PostgreSQL gets ``pool_pre_ping`` and a
pool sized for one worker (the main thread and its heartbeat); SQLite gets WAL and a busy
timeout so that several local workers share one file; ``grpc://HOST:PORT`` reaches
``mtlsearch proxy``.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mtlsearch._liveness import retry_callback
from mtlsearch.errors import StorageError, disk_trouble, first_line

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


def check_storage(url: str, *, write: bool = True) -> None:
    """Is the storage there, without touching it? A SQLite file's folder must exist (and be
    writable, with ``write``: a study is about to be written); an existing file must be readable
    (and writable); a server must answer ``SELECT 1``; a gRPC proxy must answer. Nothing is
    created: a refused command leaves no file behind."""
    if url.startswith(GRPC_SCHEME):
        _open_grpc(url)
        return
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError, SQLAlchemyError

    shown = redact(url)
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StorageError(_malformed(shown)) from None
    if parsed.drivername.startswith("sqlite"):
        if parsed.database in (None, "", ":memory:"):
            return
        path = os.path.abspath(parsed.database)
        folder = os.path.dirname(path)
        if not os.path.isdir(folder):
            raise StorageError(f"cannot create {shown}: folder {folder} does not exist; create it or fix --storage")
        if os.path.exists(path):
            if not os.access(path, os.R_OK) or (write and not os.access(path, os.W_OK)):
                raise StorageError(f"cannot {'write' if write else 'read'} {shown}: the file is read-only; copy it somewhere writable or fix --storage")
        elif write and not os.access(folder, os.W_OK):
            raise StorageError(f"cannot create {shown}: folder {folder} is read-only; choose a writable folder with --storage")
        return
    try:
        engine = create_engine(url, **_engine_kwargs(url, 1))
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        engine.dispose()
    except (NoSuchModuleError, ImportError, ModuleNotFoundError) as exc:
        raise StorageError(f"unsupported storage URL {shown!r} ({exc}): use sqlite:///, postgresql+psycopg:// or grpc://") from None
    except (SQLAlchemyError, OSError) as exc:
        raise StorageError(f"cannot reach storage {shown} ({first_line(exc)}): check the URL and that the server is running") from None


@contextlib.contextmanager
def creation_lock(url: str) -> Iterator[None]:
    """Around creating or loading a study: for a SQLite file, an exclusive lock on
    ``<file>.lock`` beside it, so two processes that create the same study at once do it one
    after the other (the second finds it made). Other storages need none: their own
    transactions order the creation."""
    path = _sqlite_path(url)
    if path is None or not os.path.isdir(os.path.dirname(path)):
        yield
        return
    import fcntl

    with open(path + ".lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _sqlite_path(url: str) -> str | None:
    if not url.startswith("sqlite"):
        return None
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        database = make_url(url).database
    except ArgumentError:
        return None
    return None if database in (None, "", ":memory:") else os.path.abspath(database)


def _malformed(shown: str) -> str:
    return f"malformed storage URL {shown!r}: use e.g. sqlite:///mtlsearch.db, postgresql+psycopg://user@host/db or grpc://host:13000"


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
        raise StorageError(_malformed(shown)) from None
    if parsed.drivername.startswith("sqlite") and parsed.database not in (None, "", ":memory:"):
        folder = os.path.dirname(os.path.abspath(parsed.database))
        if not os.path.isdir(folder):
            raise StorageError(f"cannot create {shown}: folder {folder} does not exist; create it or fix --storage")
        if not os.access(folder, os.W_OK):  # a read-only mount: SQLite cannot even read without its -shm file beside it
            raise StorageError(f"cannot open {shown}: folder {folder} is read-only, and SQLite writes its lock and WAL "
                               "files beside the database even to read it; copy the file somewhere writable and pass that --storage")  # fmt: skip
        _use_wal(parsed.database)
    beats: dict[str, object] = {}
    if heartbeat is not None:
        beats = {
            "heartbeat_interval": heartbeat.interval,
            "grace_period": heartbeat.grace,
            _stale_callback_arg(): retry_callback(),
        }
    for attempt in range(3):
        try:
            storage = optuna.storages.RDBStorage(url, engine_kwargs=_engine_kwargs(url, pool_size), **beats)
            break
        except (NoSuchModuleError, ImportError, ModuleNotFoundError) as exc:
            raise StorageError(f"unsupported storage URL {shown!r} ({exc}): use sqlite:///, postgresql+psycopg:// or grpc://") from None
        except (SQLAlchemyError, OSError) as exc:
            reason = first_line(exc)
            if "already exists" in reason and attempt < 2:  # another process created the tables first: theirs are ours
                continue
            raise StorageError(_unreachable(shown, reason)) from None
    if parsed.drivername.startswith("sqlite"):
        _begin_immediate(storage.engine)
    return storage


def refused_write(url: str, exc: BaseException) -> StorageError:
    """A write the database refused (a full disk, a read-only file), as one line: Optuna wraps
    the driver's error in its own, which blames the data ("exceeding max length")."""
    cause: BaseException | None = exc
    while cause.__cause__ is not None:  # the driver's own words, at the bottom of the chain
        cause = cause.__cause__
    return StorageError(_unreachable(redact(url), first_line(cause)))


def _unreachable(shown: str, reason: str) -> str:
    lowered = reason.lower()
    trouble = disk_trouble(reason)
    if trouble == "full" or "exceeding max length" in lowered:  # Optuna's words for a commit that failed
        return f"cannot write storage {shown}: the disk is full ({reason}); free some space or choose another --storage"
    if trouble == "failing":
        return f"cannot write storage {shown} ({reason}): the disk is full or failing; free some space, or check the disk, or choose another --storage"
    if "readonly" in lowered or "read-only" in lowered:
        return f"cannot write storage {shown}: it is read-only ({reason}); copy it somewhere writable or fix --storage"
    return f"cannot reach storage {shown} ({reason}): check the URL and that the server is running"


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
