"""Local worker processes for ``mtlsearch run --workers K``, under one live display.

Each worker is a ``mtlsearch worker --events`` process on its own device: the very command a
user runs on another machine. It writes one JSON object per line to stdout (``EventCallbacks``);
the parent reads them and draws every worker's trial on one rich display. Ctrl-C or SIGTERM to
the parent is forwarded once to every worker, which fails its running trial and exits.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from mtlsearch._progress import best_note
from mtlsearch._worker import Callbacks

if TYPE_CHECKING:
    import optuna

    from mtlsearch._train import TrainResult
    from mtlsearch.models import Candidate

STEP_EVERY_S = 0.25


class EventCallbacks(Callbacks):
    """A worker's progress as JSON lines, for a parent process to draw."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream or sys.stdout
        self._last_step = 0.0

    def emit(self, event: str, **data: object) -> None:
        self.stream.write(json.dumps({"event": event, **data}) + "\n")
        self.stream.flush()

    def trial_started(self, number: int, candidate: Candidate, trained: int, target: int) -> None:
        self.emit("start", trial=number, strategy=candidate.strategy, params=candidate.counts.total,
                  specific=candidate.specific_fraction)  # fmt: skip

    def on_step(self, done: int, total: int) -> None:  # type: ignore[override]
        now = time.monotonic()
        if done == total or now - self._last_step >= STEP_EVERY_S:
            self._last_step = now
            self.emit("step", done=done, total=total)

    def trial_finished(self, trial: optuna.trial.FrozenTrial, result: TrainResult) -> None:
        self.emit("finish", trial=trial.number, strategy=trial.user_attrs.get("strategy", "search"),
                  accuracy=result.accuracy, params=trial.user_attrs["params"], seconds=result.train_seconds)  # fmt: skip

    def trial_infeasible(self, number: int, candidate: Candidate) -> None:
        self.emit("infeasible", trial=number)

    def trial_reused(self, number: int, earlier: int) -> None:
        self.emit("reused", trial=number, earlier=earlier)

    def trial_stopped(self, number: int, result: TrainResult, median: float) -> None:
        self.emit("stopped", trial=number, accuracy=result.probe_accuracy, median=median, seconds=result.train_seconds)

    def waiting(self, in_flight: int) -> None:
        self.emit("waiting", in_flight=in_flight)

    def storage_wait(self, reason: str, delay: float) -> None:
        self.emit("storage", reason=reason, delay=delay)


@dataclass
class _Worker:
    index: int
    device: str
    proc: subprocess.Popen[str]
    stderr: deque[str] = field(default_factory=lambda: deque(maxlen=20))
    row: int = 0


@dataclass
class PoolSummary:
    trained: int = 0
    infeasible: int = 0
    reused: int = 0
    failed_workers: list[tuple[int, int, str]] = field(default_factory=list)  # (worker, code, last error line)
    interrupted: bool = False


def _pump(worker: _Worker, events: queue.Queue[tuple[int, dict[str, object] | None]]) -> None:
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
    console: Console,
    trained: int,
    target: int,
    best: tuple[float, int, str] | None,
) -> PoolSummary:
    """Start one ``mtlsearch worker`` per device with ``worker_args``; draw them until all exit.

    The storage URL reaches the workers through ``OPTUNA_STORAGE``, not the command line,
    where ``ps`` would show its password to every user of the machine.
    """
    events: queue.Queue[tuple[int, dict[str, object] | None]] = queue.Queue()
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
    progress = Progress(
        TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        TextColumn("{task.fields[note]}", markup=False), console=console,
    )  # fmt: skip
    overall = progress.add_task("trials", total=target, completed=trained, note=best_note(best))
    for worker in workers:
        worker.row = progress.add_task(f"  worker {worker.index} ({worker.device})", total=1, completed=0, note="starting")

    def forward(signum: int, frame: object) -> None:
        summary.interrupted = True
        for worker in workers:
            if worker.proc.poll() is None:
                worker.proc.send_signal(signal.SIGINT)

    previous = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM)}
    running = len(workers)
    try:
        with progress:
            while running:
                try:
                    index, event = events.get(timeout=0.5)
                except queue.Empty:
                    continue
                worker = workers[index - 1]
                if event is None:
                    running -= 1
                    code = worker.proc.wait()
                    progress.update(worker.row, note=f"exited ({code})" if code else "done")
                    if code not in (0, 130, -signal.SIGINT):
                        summary.failed_workers.append((worker.index, code, worker.stderr[-1] if worker.stderr else ""))
                    continue
                best = _draw(progress, console, overall, worker, event, summary, best)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    return summary


def _draw(
    progress: Progress, console: Console, overall: int, worker: _Worker, event: dict[str, object],
    summary: PoolSummary, best: tuple[float, int, str] | None,
) -> tuple[float, int, str] | None:  # fmt: skip
    kind = event["event"]
    if kind == "start":
        note = f"#{event['trial']} {event['strategy']}, {event['specific']:.1%} task-specific"  # type: ignore[str-format]
        progress.reset(worker.row, total=1, completed=0, note=note)
    elif kind == "step":
        progress.update(worker.row, completed=event["done"], total=event["total"])  # type: ignore[arg-type]
    elif kind == "finish":
        summary.trained += 1
        accuracy = float(event["accuracy"])  # type: ignore[arg-type]
        if best is None or accuracy > best[0]:
            best = (accuracy, int(event["trial"]), str(event["strategy"]))  # type: ignore[call-overload]
        progress.advance(overall)
        progress.update(overall, note=best_note(best))
        progress.update(worker.row, note="next candidate")
        console.print(
            f"  trial {event['trial']:>3}  {event['strategy']:<16} accuracy {accuracy:.4f}  "
            f"params {event['params']:>11,}  {event['seconds']:5.1f} s  worker {worker.index}"
        )
    elif kind == "stopped":
        summary.trained += 1
        progress.advance(overall)
        progress.update(worker.row, note="next candidate")
        console.print(
            f"  trial {event['trial']:>3}  stopped early: accuracy {event['accuracy']:.4f} at a third of its steps, "
            f"median {event['median']:.4f}  {event['seconds']:5.1f} s  worker {worker.index}"
        )
    elif kind == "infeasible":
        summary.infeasible += 1
    elif kind == "reused":
        summary.reused += 1
        console.print(f"  trial {event['trial']:>3}  same allocation as trial {event['earlier']}: result reused, not trained")
    elif kind == "waiting":
        progress.update(worker.row, note=f"waiting for {event['in_flight']} trial(s) in flight elsewhere")
    elif kind == "storage":
        progress.update(worker.row, note=f"storage unreachable ({event['reason']}); retrying")
    return best
