#!/usr/bin/env python3
"""Where the time goes in `mlci run --to gate`, and each stage's overhead over the bare library call.

    python3 benchmarks/bench_overhead.py [--rows N] [--estimator logistic|example] [--rounds 3]
                                         [--no-warm-up] [--no-profile]

On a copy of the bundled credit-risk example (``--rows`` resamples its training file to N rows, with
unique ids), each round runs, in this process and interleaved:

- the four stages as ``mlci run --to gate`` runs them (each command in this process), whose shares of
  the total are printed;
- the bare library calls each stage wraps, on the same files:
  validate ~ ``pandas.read_csv`` of the training file (the issue's anchor);
  train ~ ``pandas.read_csv`` + scikit-learn ``cross_validate`` (the same folds and metrics) + ``fit``
  of the same pipeline (``mlci.ml.features.build_pipeline``);
  evaluate ~ ``pandas.read_csv`` of the holdout + ``skops.io.load`` + ``predict`` + ``predict_proba`` +
  the same metrics overall and per slice, with scikit-learn's metric functions.

It prints medians and ratios (target: train <= 1.1x): of the median times, the median of same-round
ratios, and the median ratio of CPU seconds (all threads; steadier on a busy machine, but blind to work
that overlaps), then mlci train's and evaluate's own parts, timed
with cProfile in one extra run: reading, cross-validation, the final fit, the model file and its type
check, the training-row fingerprints (``mlci.ml.row_identity``), the registry, the model card; and
evaluate's latency timing, plots and report. ``--estimator example`` keeps the example's gradient
boosting (150 iterations: fits dominate); ``logistic`` (default) makes fitting cheap, so mlci's own
costs show.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import io
import os
import pstats
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "credit-risk"
STAGES = ("validate", "train", "evaluate", "gate")
SKLEARN_SCORERS = {"roc_auc": "roc_auc", "accuracy": "accuracy", "f1": "f1"}


def prepare(folder: Path, rows: int | None, estimator: str) -> Path:
    project = folder / "credit-risk"
    shutil.copytree(EXAMPLE, project, ignore=shutil.ignore_patterns(".mlci", "reports", "predictions"))
    config = yaml.safe_load((project / "mlci.yaml").read_text())
    if estimator == "logistic":
        config["model"]["estimator"] = "sklearn.linear_model.LogisticRegression"
        config["model"]["params"] = {"max_iter": 1000}
    (project / "mlci.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    if rows:
        train = pd.read_csv(project / "data" / "train.csv", dtype=str, keep_default_na=False)
        picked = train.iloc[np.random.default_rng(0).integers(0, len(train), rows)].reset_index(drop=True)
        picked["customer_id"] = [f"C{9_000_000_000 + i:010d}" for i in range(rows)]
        picked.to_csv(project / "data" / "train.csv", index=False)
    return project


class Stages:
    """mlci's stage functions and the bare library calls, on one project."""

    def __init__(self, project_dir: Path) -> None:
        from mlci.core.config import load_project

        self.project = load_project(project_dir)
        self.dir = project_dir

    # -- mlci --------------------------------------------------------------------------------------

    def mlci(self, stage: str) -> None:
        """The stage as `mlci run` runs it: the command, in this process."""
        from mlci.cli.main import run

        output = io.StringIO()
        with contextlib.redirect_stdout(output), contextlib.redirect_stderr(output):
            code = run(["-C", str(self.dir), stage])
        if code != 0:
            raise SystemExit(f"mlci {stage} exited {code}:\n{output.getvalue()[-2000:]}")

    # -- the bare library calls ----------------------------------------------------------------------

    def _frame(self, name: str) -> pd.DataFrame:
        return pd.read_csv(self.project.path(getattr(self.project.config.data, name)))

    def _pipeline(self) -> tuple[Any, list[str]]:
        from mlci.core.dataschema import load_schema
        from mlci.ml.features import build_pipeline, feature_columns, make_estimator

        model = self.project.config.model
        schema = load_schema(self.project.path(self.project.config.data.schema))
        estimator = make_estimator(model.estimator, model.params, task=model.task, seed=model.seed)
        pipeline = build_pipeline(schema, estimator=estimator, scale_numeric=model.scale_numeric)
        return pipeline, feature_columns(schema)

    def bare(self, stage: str) -> None:
        getattr(self, f"bare_{stage}")()

    def bare_validate(self) -> None:
        self._frame("train")

    def bare_train(self) -> None:
        from sklearn.base import clone
        from sklearn.model_selection import StratifiedKFold, cross_validate

        model = self.project.config.model
        frame = self._frame("train")
        self._frame("holdout")  # mlci reads the holdout file too (its lineage goes into the record)
        pipeline, features = self._pipeline()
        X, y = frame[features], frame["default"]
        folds = StratifiedKFold(model.cv_folds, shuffle=True, random_state=model.seed)
        cross_validate(pipeline, X, y, cv=folds, scoring=[SKLEARN_SCORERS[m] for m in model.metrics])
        self.bare_model = clone(pipeline).fit(X, y)

    def bare_evaluate(self) -> None:
        model, frame, features = self.bare_evaluate_inputs()
        bare_evaluate_calls(model, frame, features, self.project.config.evaluation.slices)

    def bare_evaluate_inputs(self) -> tuple[Any, pd.DataFrame, list[str]]:
        """The latest version's model (``skops.io.load``), the holdout frame and the model's features."""
        import skops.io

        from mlci.ops.model.registry import open_registry

        registry = open_registry(self.project)
        record = registry.get("latest")
        path = registry.artifact_path(record["version"], "model.skops")
        model = skops.io.load(path, trusted=skops.io.get_untrusted_types(file=path))
        return model, self._frame("holdout"), list(record["features"])

    def bare_gate(self) -> None:
        pass  # the gate's arithmetic is mlci's own: no library call to compare with


def bare_evaluate_calls(model: Any, frame: pd.DataFrame, features: list[str], slices: list[str]) -> None:
    """What evaluate wraps: ``predict`` and ``predict_proba`` on the holdout, then scikit-learn's metric
    functions (ROC AUC, accuracy, F1) overall and for each value of each slice column."""
    from sklearn import metrics

    y = frame["default"].to_numpy()
    label = model.predict(frame[features])
    proba = model.predict_proba(frame[features])[:, 1]

    def scores(mask: np.ndarray) -> None:
        if len(np.unique(y[mask])) == 2:
            metrics.roc_auc_score(y[mask], proba[mask])
        metrics.accuracy_score(y[mask], label[mask])
        metrics.f1_score(y[mask], label[mask])
    scores(np.ones(len(y), dtype=bool))
    for column in slices:
        for value in frame[column].dropna().unique():
            scores((frame[column] == value).to_numpy())


def timed(function: Callable[[], None]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (this process's, all threads)."""
    start, cpu = time.perf_counter(), time.process_time()
    function()
    return time.perf_counter() - start, time.process_time() - cpu


def measure(stages: Stages, rounds: int) -> dict[str, dict[str, list[tuple[float, float]]]]:
    times: dict[str, dict[str, list[tuple[float, float]]]] = {stage: {"mlci": [], "bare": []} for stage in STAGES}
    for _ in range(rounds):
        for stage in STAGES:
            times[stage]["mlci"].append(timed(lambda stage=stage: stages.mlci(stage)))
            times[stage]["bare"].append(timed(lambda stage=stage: stages.bare(stage)))
    return times


PARTS = {
    "train": [("read train + holdout (with sha256)", "mlci/ops/model/train.py", "train_and_holdout"),
              ("cross-validation", "mlci/ops/model/train.py", "cross_validate"),
              ("final fit", "", "final fit"),
              ("model file (skops dump)", "mlci/adapters/model_files.py", "dump_model"),
              ("model file type check", "mlci/adapters/model_files.py", "untrusted_types"),
              # on a worker thread, overlapping the fits: cProfile (this thread only) does not see it
              ("training-row fingerprints (main thread)", "mlci/ops/model/train.py", "training_rows"),
              ("registry write", "mlci/adapters/registry_store.py", "register"),
              ("model card", "mlci/ops/model/registry.py", "write_model_card"),
              ("TensorBoard scalars", "mlci/ops/model/scalars.py", "log_training")],
    "evaluate": [("load + verify model", "mlci/ops/model/registry.py", "load_version_model"),
                 ("read holdout", "mlci/ops/model/train.py", "holdout_dataset"),
                 ("predict", "mlci/ops/model/evaluate.py", "predict"),
                 ("metrics + slices", "mlci/ops/model/evaluate.py", "slice_metrics"),
                 ("latency (rows one by one)", "mlci/ops/model/evaluate.py", "measure_latency"),
                 ("plots + HTML", "mlci/ops/model/evaluate.py", "render_html")],
}


def parts(stages: Stages, stage: str) -> tuple[float, list[tuple[str, float]]]:
    profile = cProfile.Profile()
    start = time.perf_counter()
    profile.runcall(stages.mlci, stage)
    total = time.perf_counter() - start
    stats = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    found = []
    for label, file, function in PARTS[stage]:
        cumulative = 0.0
        for (path, _, name), (_, _, _, ct, callers) in stats.items():
            if function == "final fit":  # scikit-learn's fit wrapper, as called by train() itself
                if path.endswith("sklearn/base.py") and name == "wrapper":
                    cumulative += sum(c[3] for (c_path, _, c_name), c in callers.items()
                                      if c_name == "_train" and c_path.endswith("mlci/ops/model/train.py"))
            elif name == function and path.endswith(file):
                cumulative = max(cumulative, ct)
        found.append((label, cumulative))
    return total, found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=None, help="resample the training file to this many rows")
    parser.add_argument("--estimator", choices=("logistic", "example"), default="logistic")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-warm-up", dest="warm_up", action="store_false",
                        help="skip the first, unmeasured pass (at 1M rows its imports are a small share)")
    parser.add_argument("--no-profile", dest="profile", action="store_false",
                        help="skip the profiled runs of train and evaluate")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        project = prepare(Path(folder), args.rows, args.estimator)
        stages = Stages(project)
        for stage in STAGES if args.warm_up else ():  # imports, caches, a first registered version
            stages.mlci(stage)
            stages.bare(stage)
        times = measure(stages, args.rounds)
        rows = len(pd.read_csv(project / "data" / "train.csv", usecols=["default"]))
        print(f"credit-risk example, {rows:,} training rows, estimator {args.estimator}, "
              f"{args.rounds} interleaved rounds, load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        wall = {s: {side: [w for w, _ in times[s][side]] for side in times[s]} for s in STAGES}
        total = sum(statistics.median(wall[s]["mlci"]) for s in STAGES)
        print(f"\n{'stage':10} {'mlci s':>8} {'share':>7} {'bare s':>8} {'ratio':>7} {'round ratios':>13} "
              f"{'CPU ratio':>10}")
        for stage in STAGES:
            mlci_s, bare_s = statistics.median(wall[stage]["mlci"]), statistics.median(wall[stage]["bare"])
            if bare_s > 1e-3:
                # the median of same-round ratios, and of CPU seconds (steadier than wall time on a busy host)
                rounds_ratio = statistics.median(m / b for m, b in zip(wall[stage]["mlci"], wall[stage]["bare"]))
                cpu = statistics.median(m[1] / b[1] for m, b in zip(times[stage]["mlci"], times[stage]["bare"]))
                ratios = f"{mlci_s / bare_s:6.2f}x {rounds_ratio:12.2f}x {cpu:9.2f}x"
            else:
                ratios = "     —"
            print(f"{stage:10} {mlci_s:8.2f} {mlci_s / total:6.0%} {bare_s:8.2f} {ratios}")
        print(f"{'total':10} {total:8.2f}")
        for stage in PARTS if args.profile else ():
            seconds, found = parts(stages, stage)
            print(f"\nmlci {stage}, one profiled run: {seconds:.2f} s (profiling inflates Python-heavy parts)")
            for label, value in found:
                print(f"  {label:36} {value:7.3f} s {value / seconds:6.1%}")


if __name__ == "__main__":
    main()
