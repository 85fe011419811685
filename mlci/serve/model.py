"""The served model: loaded from a registry directory (the project's, or the copy inside the image),
sha256-verified and type-checked by the same code as every other registry read."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from mlci.adapters.model_files import MODEL_FILE, load_model
from mlci.adapters.registry_store import ModelRegistry
from mlci.core.dataschema import NUMERIC_TYPES, DataSchema
from mlci.core.records import ModelVersion
from mlci.core.spec import build
from mlci.core.yamlsrc import YamlDocument
from mlci.errors import IntegrityError
from mlci.serve.compiled import CompiledPipeline, Unsupported, compile_pipeline, verification_columns, verify
from mlci.serve.pipeline_path import PipelineScorer


@dataclass
class ServedModel:
    pipeline: Any
    record: ModelVersion
    schema: DataSchema
    features: list[str]
    classes: list[Any] | None = None
    _numeric: set[str] = field(default_factory=set)
    # The NumPy form of the pipeline when it compiled and verified; None scores with the pipeline itself.
    compiled: CompiledPipeline | None = None
    scorer: PipelineScorer = field(init=False)  # the pipeline itself, fed NumPy arrays (set by __post_init__)
    scoring_note: str = ""

    @property
    def version(self) -> int:
        return self.record.version

    @property
    def is_classifier(self) -> bool:
        return self.classes is not None

    def info(self) -> dict[str, Any]:
        """What ``GET /version`` answers: which model, trained on which data, from which commit."""
        return {"model_version": self.version, "task": self.record.task,
                "data_sha256": self.record.train.sha256, "git_commit": self.record.git_commit,
                "model_sha256": self.record.artifact_sha256(MODEL_FILE),
                "created": self.record.created, "features": self.features,
                "scoring": "compiled" if self.compiled is not None else "pipeline"}

    def __post_init__(self) -> None:
        self.scorer = PipelineScorer(self.pipeline, self.features, self._numeric, classifier=self.is_classifier)

    def predict(self, columns: dict[str, list[Any]]) -> tuple[list[Any], list[list[float]] | None]:
        scores = self.compiled(columns) if self.compiled is not None else self.scorer(columns)
        if self.is_classifier:
            labels = np.asarray(self.pipeline.classes_)[scores.argmax(axis=1)]
            return _plain_list(labels), np.round(scores, 6).tolist()
        return _plain_list(scores), None

    def compile(self) -> None:
        """Switch to the compiled NumPy path if the pipeline compiles and verifies; else keep the pipeline."""
        try:
            compiled = compile_pipeline(self.pipeline, self._numeric, classifier=self.is_classifier)
            verify(compiled, self.scorer, verification_columns(self.schema, self.features))
        except Unsupported as exc:
            self.scoring_note = f"scoring with the scikit-learn pipeline: {exc}"
            return
        self.compiled = compiled
        self.scoring_note = "scoring with the compiled pipeline (verified against scikit-learn)"


def _plain_list(values: np.ndarray) -> list[Any]:
    return np.asarray(values).tolist()


def load_served_model(registry_root: Path, ref: str | int) -> ServedModel:
    registry = ModelRegistry(Path(registry_root))
    record = registry.get_version(ref)
    pipeline = load_model(registry.read_artifact(record.version, MODEL_FILE))
    schema = build(DataSchema, YamlDocument(data=record.schema, file=f"model version {record.version} schema"))
    features = list(record.features or schema.features)
    missing = [name for name in features if name not in schema.columns]
    if missing:
        raise IntegrityError(f"model version {record.version}: features {missing} are not in its schema")
    classifier = record.task != "regression" and hasattr(pipeline, "predict_proba")
    classes = _plain_list(pipeline.classes_) if classifier else None
    numeric = {name for name in features if schema.columns[name].type in NUMERIC_TYPES}
    _single_threaded(pipeline)
    model = ServedModel(pipeline=pipeline, record=record, schema=schema, features=features, classes=classes,
                        _numeric=numeric)
    model.compile()
    return model


def _single_threaded(pipeline: Any) -> None:
    """One request is one row or a few: a thread pool per call (n_jobs) costs more than it saves, and
    the server's concurrency comes from its event loop and worker processes."""
    for step in getattr(pipeline, "steps", [(None, pipeline)]):
        if hasattr(step[1], "n_jobs"):
            step[1].n_jobs = 1
