"""The bad-input and fault matrix: every refusal is one line on stderr, exit 2 (bad input), no
traceback, nothing stored, and a database that existed keeps its bytes (docs/reliability.md).

Each case runs the real command line in a folder that holds a small study (``s``) and the bad
files the cases need."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import run_cli, write_image_folder

pytestmark = pytest.mark.slow

TINY = ("--epochs", "1", "--train-size", "32")
GOOD_PRESET = 'dataset = "fashion-mux"\nbackbone = "resnet18-narrow"\nimage_size = 28\ngranularity = "layer"\nbudget = 0.1\n'
PRESETS = {
    "nan-budget": GOOD_PRESET.replace("budget = 0.1", "budget = nan"),
    "string-budget": GOOD_PRESET.replace("budget = 0.1", 'budget = "0.1"'),
    "fractional-size": GOOD_PRESET.replace("image_size = 28", "image_size = 28.5"),
    "nan-lr": GOOD_PRESET + "[fidelity]\nlr = nan\n",
    "zero-epochs": GOOD_PRESET + "[fidelity]\nepochs = 0\n",
    "unknown-key": GOOD_PRESET + "colour = 3\n",
    "unknown-fidelity-key": GOOD_PRESET + "[fidelity]\nlearning_rate = 0.1\n",
    "not-toml": "budget = = 0.1\n",
    "fidelity-not-a-table": GOOD_PRESET + "fidelity = 3\n",
    "yes-pretrained": GOOD_PRESET + 'pretrained = "yes"\n',
    "number-augment": GOOD_PRESET + "augment = 1\n",
    "bad-sampler": GOOD_PRESET + 'sampler = "annealing"\n',
    "bad-execution": GOOD_PRESET + 'execution = "fast"\n',
}


def _digest(folder: Path) -> str:
    """The study's bytes: the database file and its write-ahead log."""
    files = (folder / "study.db", folder / "study.db-wal")
    return "".join(hashlib.sha256(p.read_bytes()).hexdigest() for p in files if p.exists() and p.stat().st_size)


@pytest.fixture(scope="module")
def place(tmp_path_factory):
    folder = tmp_path_factory.mktemp("faults")
    url = f"sqlite:///{folder / 'study.db'}"
    made = run_cli("create", "--study-name", "s", "--storage", url, *TINY, cwd=folder)
    assert made.returncode == 0, made.stderr
    with sqlite3.connect(folder / "study.db") as con:  # the log into the file, so that reading it later moves nothing
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    for name, text in PRESETS.items():
        (folder / f"{name}.toml").write_text(text)
    (folder / "text.pt").write_text("not a checkpoint\n")
    from mtlsearch.models import get_backbone

    torch.save(get_backbone("resnet18").create().state_dict(), folder / "other.pt")
    torch.save({"state_dict": {"w": torch.zeros(1)}, "hook": np.ones}, folder / "code.pt")  # pickles a function
    spec = {"train": {"x": 3, "y": 3}, "test": {"x": 1, "y": 1}}
    hollow = write_image_folder(folder / "hollow", {"a": spec})
    (hollow / "a" / "train" / "z").mkdir()
    bomb = write_image_folder(folder / "bomb", {"a": spec})
    from PIL import Image

    Image.new("L", (14000, 14000)).save(bomb / "a" / "train" / "x" / "big.png")  # 190 KB, 196 million pixels
    (folder / "a-file").write_text("")
    return folder, url


# (arguments, expected code, part of the one line): {url} and {f} are filled in per case
CASES = [
    # run: options
    (("run", "--budget", "nan"), 2, "--budget is nan: use a finite number in [0, 1]"),
    (("run", "--budget", "1.5"), 2, "--budget is 1.5"),
    (("run", "--budget", "abc"), 2, "Invalid value for '--budget'"),
    (("run", "--epochs", "0"), 2, "--epochs is 0: use a whole number"),
    (("run", "--epochs", "1.5"), 2, "Invalid value for '--epochs'"),
    (("run", "--image-size", "4"), 2, "--image-size is 4"),
    (("run", "--train-size", "1"), 2, "--train-size is 1"),
    (("run", "--val-size", "0"), 2, "--val-size is 0"),
    (("run", "--granularity", "pixel"), 2, "--granularity is 'pixel': use one of layer, block, stage"),
    (("run", "--sampler", "annealing"), 2, "--sampler is 'annealing'"),
    (("run", "--early-stop", "nan"), 2, "--early-stop is nan"),
    (("run", "--seed", "-1"), 2, "--seed is -1"),
    (("run", "--backbone", "vgg16"), 2, "unknown backbone 'vgg16'"),
    (("run", "--preset", "nope"), 2, "unknown preset 'nope'"),
    (("run", "--preset", "{f}/missing.toml"), 2, "does not exist"),
    (("run", "--bogus"), 2, "No such option: --bogus"),
    (("run", "--device", "cuda:7"), 2, "device cuda:7 is not on this machine"),
    (("run", "--device", "tpu"), 2, "unknown device 'tpu'"),
    (("run", "--execution", "turbo"), 2, "unknown --execution 'turbo'"),
    (("run", "--heartbeat-interval", "10", "--grace-period", "5"), 2, "grace period longer"),
    (("run", "--out", "{f}/a-file"), 2, "is a file"),
    # run: storage, checkpoint and data, before anything is stored
    (("run", "--storage", "sqlite:////no/such/dir/x.db"), 2, "folder /no/such/dir does not exist"),
    (("run", "--storage", "postgresql+psycopg://postgres@127.0.0.1:1/x"), 2, "cannot reach storage"),
    (("run", "--storage", "nonsense"), 2, "malformed storage URL"),
    (("run", "--weights", "{f}/missing.pt"), 2, "does not exist"),
    (("run", "--weights", "{f}/text.pt"), 2, "neither a safetensors file nor a state dict"),
    (("run", "--weights", "{f}/code.pt"), 2, "pickles objects beyond tensors"),
    (("run", "--weights", "{f}/other.pt"), 2, "does not fit this backbone"),
    (("run", "--data-root", "{f}/no-such-folder"), 2, "does not exist"),
    (("run", "--data-root", "{f}/hollow"), 2, "empty class folder"),
    (("run", "--data-root", "{f}/bomb", "--image-size", "16"), 2, "decompression bomb"),
    # presets
    *[(("run", "--preset", f"{{f}}/{name}.toml"), 2, part) for name, part in [
        ("nan-budget", "preset nan-budget: budget is nan"),
        ("string-budget", "budget is '0.1' (a string): use a finite number"),
        ("fractional-size", "image_size is 28.5: use a whole number of pixels"),
        ("nan-lr", "fidelity.lr is nan"),
        ("zero-epochs", "fidelity.epochs is 0"),
        ("unknown-key", "unknown keys ['colour']"),
        ("unknown-fidelity-key", "unknown fidelity keys ['learning_rate']"),
        ("not-toml", "is not valid TOML"),
        ("fidelity-not-a-table", "fidelity is 3: use a [fidelity] table"),
        ("yes-pretrained", "pretrained is 'yes': use true or false"),
        ("number-augment", "augment is 1: use true or false"),
        ("bad-sampler", "sampler is 'annealing'"),
        ("bad-execution", "preset bad-execution: execution is 'fast': use one of auto, loop, stacked"),
    ]],  # fmt: skip
    # create, worker, and the readers, on the existing study
    (("create", "--study-name", "s", "--storage", "{url}", "--budget", "nan"), 2, "--budget is nan"),
    (("create", "--study-name", "s", "--storage", "{url}", "--epochs", "2", "--train-size", "32"), 2, "created with other settings (fidelity.epochs: 1 -> 2)"),
    (("create", "--study-name", "s", "--storage", "{url}", "--execution", "turbo"), 2, "unknown --execution 'turbo'"),
    (("worker", "--study-name", "s", "--storage", "{url}", "--execution", "turbo"), 2, "unknown --execution 'turbo'"),
    (("worker", "--study-name", "missing", "--storage", "{url}"), 2, "no study named 'missing'"),
    (("worker", "--study-name", "s", "--storage", "{url}", "--device", "cuda:3"), 2, "device cuda:3 is not on this machine"),
    (("worker", "--storage", "{url}"), 2, "Missing option '--study-name'"),
    (("report", "--study-name", "missing", "--storage", "{url}"), 2, "no study named 'missing'"),
    (("show", "--trial", "999", "--study-name", "s", "--storage", "{url}"), 2, "has trials 0 to 3, not 999"),
    (("show", "--study-name", "s", "--storage", "{url}"), 2, "Missing option '--trial'"),
    (("export", "--format", "xlsx", "--study-name", "s", "--storage", "{url}"), 2, "unknown export format 'xlsx'"),
    (("export", "--out", "/proc/mtlsearch.csv", "--study-name", "s", "--storage", "{url}"), 2, "cannot write /proc/mtlsearch.csv"),
    (("train", "--trial", "0", "--strategy", "shared", "--out", "m", "--storage", "{url}"), 2, "pass exactly one of --trial N and --strategy NAME"),
    (("train", "--strategy", "nope", "--out", "m", "--storage", "{url}"), 2, "unknown strategy 'nope'"),
    (("train", "--strategy", "independent", "--out", "m", "--storage", "{url}"), 2, "over the study's budget"),
    (("train", "--trial", "1", "--out", "m", "--storage", "{url}"), 2, "trial 1 has no allocation yet (WAITING)"),
    (("dashboard", "--storage", "sqlite:////no/such/dir/x.db"), 2, "does not exist"),
    (("studies", "--storage", "nonsense"), 2, "malformed storage URL"),
]


@pytest.mark.parametrize("args, code, part", CASES, ids=[" ".join(a).replace("{f}/", "")[:60] for a, _, _ in CASES])
def test_a_refusal_is_one_line_and_changes_nothing(place, args, code, part) -> None:
    folder, url = place
    before = _digest(folder)
    shown = [a.replace("{f}", str(folder)).replace("{url}", url) for a in args]
    work = folder / "work"
    work.mkdir(exist_ok=True)
    result = run_cli(*shown, *(() if args[0] != "run" or "--storage" in args else ("--storage", f"sqlite:///{work / 'run.db'}")), cwd=work)
    assert result.returncode == code, result.stderr
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1 and result.stderr.startswith("error: "), result.stderr
    assert part in result.stderr
    assert _digest(folder) == before  # the existing study, byte for byte
    assert not (work / "run.db").exists() and not list(work.glob("mtlsearch-report/*"))  # a refused run stores nothing


def test_a_study_stored_with_bad_settings_or_by_an_older_version_is_refused(place) -> None:
    folder, url = place
    db = folder / "tampered.db"
    db.write_bytes((folder / "study.db").read_bytes())
    with sqlite3.connect(db) as con:
        row = con.execute("select value_json from study_user_attributes where key='settings'").fetchone()
        stored = json.loads(row[0])
        stored["image_size"] = 28.5
        con.execute("update study_user_attributes set value_json=? where key='settings'", (json.dumps(stored),))
    result = run_cli("worker", "--study-name", "s", "--storage", f"sqlite:///{db}", cwd=folder)
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "study 's' stores image_size, which is 28.5: use a whole number of pixels" in result.stderr
    old = folder / "old.db"
    old.write_bytes((folder / "study.db").read_bytes())
    with sqlite3.connect(old) as con:
        con.execute("update study_system_attributes set value_json='1' where key='mtlsearch:space'")
    result = run_cli("report", "--study-name", "s", "--storage", f"sqlite:///{old}", cwd=folder)
    assert result.returncode == 2 and "older mtlsearch with search space 1" in result.stderr and result.stderr.count("\n") == 1


def test_two_runs_creating_one_sqlite_study_at_once_both_succeed(tmp_path: Path) -> None:
    from conftest import start_cli

    args = ("run", *TINY, "--n-trials", "1", "--study-name", "twice", "--storage", f"sqlite:///{tmp_path / 'new.db'}")
    first, second = start_cli(*args, cwd=tmp_path), start_cli(*args, cwd=tmp_path)
    outs = [p.communicate(timeout=900) for p in (first, second)]
    assert [first.returncode, second.returncode] == [0, 0], [err for _, err in outs]
    import optuna

    study = optuna.load_study(study_name="twice", storage=f"sqlite:///{tmp_path / 'new.db'}")
    assert sorted(t.user_attrs.get("strategy") for t in study.trials if t.user_attrs.get("strategy") != "search").count("shared") == 1


def test_a_study_name_never_chooses_where_the_report_lands(place) -> None:
    folder, url = place
    for name in ("../../escaped_report", "<script>x</script>"):
        made = run_cli("create", "--study-name", name, "--storage", url, *TINY, cwd=folder)
        assert made.returncode == 0, made.stderr
        result = run_cli("report", "--study-name", name, "--storage", url, cwd=folder)
        assert result.returncode == 0, result.stderr
    written = sorted(p.name for p in (folder / "mtlsearch-report").iterdir())
    assert written == ["_script_x_script_.html", "_escaped_report.html"] or set(written) == {"_script_x_script_.html", "_escaped_report.html"}
    assert not (folder.parent.parent / "escaped_report.html").exists()
