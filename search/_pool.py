"""Local worker processes for ``mtlsearch run --workers K``.

Each worker is a ``mtlsearch worker --events`` process on its own device: the very command a
user runs on another machine. It writes one JSON event per line to stdout (``_events``); the
parent hands each to ``on_event`` (the CLI's display draws every worker's trial with the same
code that draws a worker in its own process). Ctrl-C or SIGTERM to the parent is forwarded once
to every worker, which fails its running trial and exits.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from mtlsearch._events import Event


@dataclass
class _Worker:
    index: int
    device: str
    proc: subprocess.Popen[str]
    stderr: deque[str] = field(default_factory=lambda: deque(maxlen=20))


@dataclass
class PoolSummary:
    trained: int = 0
    infeasible: int = 0
    reused: int = 0
    failed_workers: list[tuple[int, int, str]] = field(default_factory=list)  # (worker, code, last error line)
    interrupted: bool = False


def _pump(worker: _Worker, events: queue.Queue[tuple[int, Event | None]]) -> None:
    assert worker.proc.stdout is not None
    for line in worker.proc.stdout:
        try:
            events.put((worker.index, json.loads(line)))
        except json.JSONDecodeError:
            worker.stderr.append(line.rstrip())
    events.put((worker.index, None))


def _drain(worker: _Worker) -> None:
    assert worker.proc.stderr is not None
    for line in worker.proc.stderr:
        if line.strip():
            worker.stderr.append(line.rstrip())


def run_pool(
    worker_args: list[str],
    devices: list[str],
    *,
    storage: str,
    on_event: Callable[[int, Event], None],
    on_exit: Callable[[int, int], None] = lambda index, code: None,
) -> PoolSummary:
    """Start one ``mtlsearch worker`` per device with ``worker_args``; hand every event of
    worker ``i`` (1, 2, ...) to ``on_event(i, event)`` until all exit (``on_exit(i, code)``).

    The storage URL reaches the workers through ``OPTUNA_STORAGE``, not the command line,
    where ``ps`` would show its password to every user of the machine.
    """
    events: queue.Queue[tuple[int, Event | None]] = queue.Queue()
    workers: list[_Worker] = []
    cpu_workers = sum(not d.startswith("cuda") for d in devices)
    for index, device in enumerate(devices, start=1):
        cmd = [sys.executable, "-m", "mtlsearch", "worker", *worker_args, "--device", device, "--events"]
        env = {**os.environ, "OPTUNA_STORAGE": storage}
        if not device.startswith("cuda") and "OMP_NUM_THREADS" not in env:  # share the cores, don't fight over them
            env["OMP_NUM_THREADS"] = str(max(1, (os.cpu_count() or 1) // cpu_workers))
        # A session of its own: a terminal's Ctrl-C reaches the workers once, through us.
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1,
                                env=env, start_new_session=True)  # fmt: skip
        workers.append(_Worker(index, device, proc))
    for worker in workers:
        threading.Thread(target=_pump, args=(worker, events), daemon=True).start()
        threading.Thread(target=_drain, args=(worker,), daemon=True).start()

    summary = PoolSummary()

    def forward(signum: int, frame: object) -> None:
        summary.interrupted = True
        for worker in workers:
            if worker.proc.poll() is None:
                worker.proc.send_signal(signal.SIGINT)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    running = len(workers)
    try:
        while running:
            try:
                index, event = events.get(timeout=0.5)
            except queue.Empty:
                continue
            worker = workers[index - 1]
            if event is None:
                running -= 1
                code = worker.proc.wait()
                on_exit(worker.index, code)
                if code not in (0, 130, -signal.SIGINT):
                    summary.failed_workers.append((worker.index, code, worker.stderr[-1] if worker.stderr else ""))
                continue
            kind = event["event"]
            if kind in ("finish", "stopped"):
                summary.trained += 1
            elif kind in ("infeasible", "reused"):
                setattr(summary, str(kind), getattr(summary, str(kind)) + 1)
            on_event(worker.index, event)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    return summary
