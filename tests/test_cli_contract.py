"""The CLI contract: exit codes per error class, one-line errors, light start-up, --help everywhere."""

from __future__ import annotations

import json
import subprocess
import sys

import click
import pytest

from mlci import errors
from mlci.cli.main import COMMANDS, cli, run

HEAVY = ("pandas", "sklearn", "scipy", "pyarrow", "matplotlib", "docker", "jenkins")


@pytest.fixture
def command_raising(monkeypatch):
    """Register a throwaway `boom` command that raises the given exception."""

    def register(exc: BaseException) -> None:
        def boom() -> None:
            raise exc

        monkeypatch.setitem(cli.commands, "boom", click.Command("boom", callback=boom))

    return register


@pytest.mark.parametrize("error, code", [
    (errors.CheckFailed("gate said no"), 1),
    (errors.IntegrityError("hash mismatch"), 1),
    (errors.UsageError("bad flag"), 2),
    (errors.ConfigError("bad key"), 2),
    (errors.DataError("bad file"), 2),
    (errors.NotFound("no such version"), 2),
    (errors.ServiceError("jenkins down"), 3),
    (errors.InternalError("bug"), 4),
    (KeyboardInterrupt(), 130),
])
def test_each_error_class_maps_to_its_exit_code(command_raising, capsys, error, code):
    command_raising(error)
    assert run(["boom"]) == code
    err = capsys.readouterr().err
    assert "Traceback" not in err
    if isinstance(error, errors.MlciError):
        assert err.startswith(f"mlci: error: {error.message}")


def test_error_hint_is_printed_on_its_own_line(command_raising, capsys):
    command_raising(errors.ServiceError("Jenkins at http://jenkins:8080/ refused", hint="check JENKINS_URL"))
    assert run(["boom"]) == 3
    assert capsys.readouterr().err.splitlines() == [
        "mlci: error: Jenkins at http://jenkins:8080/ refused", "mlci: hint: check JENKINS_URL"]


def test_unexpected_exception_is_one_line_with_a_crash_log(command_raising, capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("MLCI_DEBUG", raising=False)
    command_raising(ZeroDivisionError("division by zero"))
    assert run(["boom"]) == 4
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1
    assert err.startswith("mlci: internal error: ZeroDivisionError: division by zero")
    assert "Traceback" in (tmp_path / "mlci" / "crash.log").read_text()


def test_debug_shows_the_traceback(command_raising, capsys):
    command_raising(errors.ConfigError("bad key"))
    assert run(["--debug", "boom"]) == 2
    assert "Traceback" in capsys.readouterr().err


def test_usage_errors_exit_2_with_suggestion(capsys):
    assert run(["vaildate"]) == 2
    assert "Did you mean 'validate'?" in capsys.readouterr().err
    assert run(["--no-such-flag"]) == 2


def test_version(capsys):
    from mlci import __version__

    assert run(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"mlci, version {__version__}"


def test_config_check_exit_codes(run_cli, tmp_path):
    (tmp_path / "mlci.yaml").write_text("project: demo\ndata: {train: t.csv}\nmodel: {task: binary, "
                                        "estimator: x, sede: 1}\n")
    code, out, err = run_cli("-C", tmp_path, "config", "check")
    assert code == 2 and out == ""
    assert "mlci.yaml:3: model.sede: unknown key 'sede' (hint: did you mean 'seed'?)" in err
    # config check also imports the estimator and checks its parameters: 'x' is not one
    (tmp_path / "mlci.yaml").write_text("project: demo\ndata: {train: t.csv}\nmodel: {task: binary, estimator: x}\n")
    code, out, err = run_cli("-C", tmp_path, "config", "check")
    assert code == 2 and "mlci.yaml:3: model.estimator: 'x' is not an import path" in err
    (tmp_path / "mlci.yaml").write_text("project: demo\ndata: {train: t.csv}\nmodel: {task: binary, "
                                        "estimator: sklearn.linear_model.LogisticRegression}\n")
    code, out, err = run_cli("--json", "-C", tmp_path, "config", "check")
    assert code == 0 and json.loads(out)["project"] == "demo"


def test_missing_config_is_a_usage_error(run_cli, tmp_path):
    code, _, err = run_cli("-C", tmp_path, "config", "check")
    assert code == 2 and "mlci.yaml: file not found" in err and "hint: run 'mlci init'" in err


def _modules_loaded_by(args: list[str]) -> set[str]:
    code = ("import sys, io, contextlib\nfrom mlci.cli.main import run\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            f"    rc = run({args!r})\n"
            "print(rc, ' '.join(sorted(sys.modules)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    rc, modules = out.stdout.split(" ", 1)
    assert rc == "0", out.stderr
    return set(modules.split())


@pytest.mark.parametrize("command", [[]] + [[name] for name in sorted(COMMANDS)], ids=lambda c: " ".join(c) or "mlci")
def test_help_imports_no_heavy_library(command):
    loaded = _modules_loaded_by([*command, "--help"])
    heavy = sorted(m for m in loaded if m.split(".")[0] in HEAVY)
    assert heavy == [], f"`mlci {' '.join(command)} --help` imports {heavy[:5]}"


def test_every_subcommand_has_help():
    for name in COMMANDS:
        group = cli.get_command(click.Context(cli), name)
        assert group.help, f"{name} has no help text"
        for sub in getattr(group, "commands", {}).values():
            assert sub.help, f"{name} {sub.name} has no help text"


def _files_only_gate_inputs(tmp_path) -> list[str]:
    """A project with threshold, slice and bootstrap champion rules, and two metrics.json files with their
    per-row predictions.npz beside them (as `mlci evaluate` writes them)."""
    import hashlib

    import numpy as np
    import yaml

    from mlci.ml.metrics import Predictions
    from mlci.ops.model.evaluate import predictions_to_bytes

    config = {"project": "files", "data": {"train": "train.csv"},
              "model": {"task": "binary", "estimator": "sklearn.linear_model.LogisticRegression"},
              "gates": {"rules": [{"metric": "roc_auc", "min": 0.6},
                                  {"metric": "accuracy", "min": 0.5, "slice": {"column": "region", "value": "east"}},
                                  {"metric": "roc_auc", "max_drop": 0.05, "bootstrap": True}]}}
    (tmp_path / "mlci.yaml").write_text(yaml.safe_dump(config))
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 400)
    proba = np.clip(0.5 + (y - 0.5) * 0.6 + rng.normal(0, 0.2, 400), 0.01, 0.99)
    preds = Predictions("binary", y, (proba > 0.5).astype(int), np.column_stack([1 - proba, proba]), ["0", "1"])
    data = predictions_to_bytes(preds, {"region": np.array(["east", "west"] * 200)})
    paths = []
    for name in ("new", "old"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "predictions.npz").write_bytes(data)
        (tmp_path / name / "metrics.json").write_text(json.dumps({
            "task": "binary", "metrics": {"roc_auc": 0.9, "accuracy": 0.8},
            "slices": {"region": {"east": {"accuracy": 0.8, "rows": 200}}},
            "predictions": "predictions.npz", "predictions_sha256": hashlib.sha256(data).hexdigest()}))
        paths.append(str(tmp_path / name / "metrics.json"))
    return paths


def test_files_only_gate_imports_no_scikit_learn_pandas_or_matplotlib(tmp_path):
    """`mlci gate --metrics --baseline`, the command run locally most, bootstrap included."""
    new, old = _files_only_gate_inputs(tmp_path)
    loaded = _modules_loaded_by(["-C", str(tmp_path), "--json", "gate", "--metrics", new, "--baseline", old])
    assert "mlci.ops.model.gate" in loaded and "numpy" in loaded  # the gate ran, bootstrap and all
    heavy = sorted(m for m in loaded if m.split(".")[0] in ("sklearn", "pandas", "matplotlib", "pyarrow", "scipy"))
    assert heavy == [], f"files-only `mlci gate` imports {heavy[:5]}"
    report = json.loads((tmp_path / "reports" / "gate.json").read_text())
    assert any("bootstrap" in json.dumps(check) for check in report["checks"]), report
