"""Report generation time for a large study (target: 500 trials in under 5 s).

Builds a study of N trials with the real worker loop and search space (the four baselines, then
the sampler's proposals) and a made-up evaluator instead of training (``_made_up``), then times,
side by side in one run: reading the trials into a frame, computing every figure's data,
drawing the figures, writing the HTML, and pushing the figures and note for optuna-dashboard;
and the whole ``mtlsearch report`` command (a new process: imports, reading, HTML, push,
table), which is the headline.

    python benchmarks/report_speed.py --trials 500

The last line is the headline: ``report_seconds=... target=5``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    import optuna

    import mtlsearch
    from _made_up import MadeUpEvaluator
    from mtlsearch import pareto_info, trials_frame
    from mtlsearch._dashboard import push_to_dashboard
    from mtlsearch._figures import allocation_info, hypervolume_info, task_accuracy_frame
    from mtlsearch._report import report_figures, write_report
    from mtlsearch._storage import open_storage
    from mtlsearch._study import stored_settings, study_spec

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    settings = mtlsearch.study_settings("embedded", sampler="random")  # TPE's own time grows with the trials; the report's is measured
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/study.db"
        handle = mtlsearch.create_study(settings, storage=url, study_name="speed", n_trials=args.trials)
        start = time.perf_counter()
        mtlsearch.run_worker(handle.study, settings, MadeUpEvaluator(settings.tasks), n_trials=args.trials)
        study = handle.study
        print(f"built a study of {len(study.trials)} trials in {time.perf_counter() - start:.1f} s "
              f"({sum(t.state.name == 'COMPLETE' for t in study.trials)} finished)")  # fmt: skip
        stages: dict[str, list[float]] = {}
        for _ in range(args.rounds):
            timings = {}
            t = time.perf_counter()
            done = subprocess.run([sys.executable, "-m", "mtlsearch", "report", "--storage", url, "--out", f"{tmp}/cli.html"],
                                  capture_output=True, text=True)  # fmt: skip
            timings["mtlsearch report (CLI)"] = time.perf_counter() - t
            if done.returncode:
                raise SystemExit(done.stderr)
            loaded = optuna.load_study(study_name="speed", storage=open_storage(url))  # a cold start, as the CLI has
            t = time.perf_counter()
            write_report(loaded, Path(tmp) / "cold.html")
            timings["write_report, cold"] = time.perf_counter() - t
            loaded = optuna.load_study(study_name="speed", storage=open_storage(url))
            t0 = time.perf_counter()
            frame = trials_frame(loaded)
            info = pareto_info(loaded, frame)
            timings["read + Pareto data"] = time.perf_counter() - t0
            t1 = time.perf_counter()
            stored = stored_settings(loaded)
            allocation_info(info, stored, study_spec(loaded, stored))
            task_accuracy_frame(info)
            hypervolume_info(loaded, frame, stored)
            timings["other figure data"] = time.perf_counter() - t1
            t2 = time.perf_counter()
            report_figures(loaded, info, frame)
            timings["figures (data + drawing)"] = time.perf_counter() - t2
            t3 = time.perf_counter()
            write_report(loaded, Path(tmp) / "report.html")
            timings["write_report, warm"] = time.perf_counter() - t3
            t4 = time.perf_counter()
            push_to_dashboard(loaded)
            timings["push to dashboard"] = time.perf_counter() - t4
            for key, value in timings.items():
                stages.setdefault(key, []).append(value)
        for key, values in stages.items():
            print(f"{key:<28} best {min(values):6.2f} s   worst {max(values):6.2f} s")
        worst = max(stages["mtlsearch report (CLI)"])
        print(f"report_seconds={worst:.2f} target=5 ratio={worst / 5:.2f}")


if __name__ == "__main__":
    main()
