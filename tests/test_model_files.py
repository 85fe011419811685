"""Loading a model file never runs code: hostile skops files are refused before anything in them is
imported or called, every supported estimator still round-trips, and models written by earlier
releases still load.

Each hostile file is a real model with one node swapped for a payload that would leave a marker file
if it ran. A control loads the same file with skops trusting every type it names (what trusting the
``numpy.``/``sklearn.`` prefixes amounted to for the numpy payloads) and sees the marker appear, so the
payloads are live and their absence after mlci's loader means nothing ran.
"""

from __future__ import annotations

import functools
import io
import json
import operator
import os
import pickle
import sys
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mlci.adapters.model_files import ALLOWED, dump_model, load_model, schema_nodes, untrusted_types
from mlci.adapters.registry_store import ModelRegistry
from mlci.errors import EXIT_CHECK_FAILED, IntegrityError
from tests.model_projects import write_project
from tests.supported_models import (
    CLASSIFIER_VARIANTS,
    CLASSIFIERS,
    REGRESSOR_VARIANTS,
    REGRESSORS,
    STEPS,
    fitted_models,
    node_names,
)

FIXTURES = Path(__file__).resolve().parent / "fixtures"
HOSTILE_MODULE = "mlci_hostile_import_probe"


# -- building hostile files ------------------------------------------------------------------------

def json_node(value: Any) -> dict:
    return {"__class__": type(value).__name__, "__module__": "builtins", "__loader__": "JsonNode",
            "content": json.dumps(value), "is_json": True}


def tuple_node(*items: dict) -> dict:
    return {"__class__": "tuple", "__module__": "builtins", "__loader__": "TupleNode", "content": list(items)}


def bytes_node(name: str) -> dict:
    return {"__class__": "bytes", "__module__": "builtins", "__loader__": "BytesNode", "file": name}


def node(loader: str, dotted: str, **extra: Any) -> dict:
    module, _, name = dotted.rpartition(".")
    return {"__class__": name, "__module__": module, "__loader__": loader, **extra}


def call(dotted: str, *args: dict) -> dict:
    """A node skops loads by calling ``dotted(*args)``."""
    return node("ConstructorFromReduceNode", dotted, content=tuple_node(*args))


def npy_bytes(data: bytes) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.frombuffer(data, dtype=np.uint8), allow_pickle=False)
    return buffer.getvalue()


def base_model() -> bytes:
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    return dump_model(Pipeline([("scale", StandardScaler())]).fit(np.arange(6.0).reshape(3, 2)))


def with_payload(payload: dict, files: dict[str, bytes] | None = None) -> bytes:
    """A real Pipeline model whose ``memory`` attribute is ``payload``, deep inside the tree."""
    source = zipfile.ZipFile(io.BytesIO(base_model()))
    schema = json.loads(source.read("schema.json"))
    schema["content"]["content"]["memory"] = payload
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for item in source.infolist():
            if item.filename != "schema.json":
                target.writestr(item, source.read(item))
        for name, data in (files or {}).items():
            target.writestr(name, data)
        target.writestr("schema.json", json.dumps(schema))
    return out.getvalue()


def dumped(func: Callable) -> bytes:
    """A model that stores a callable, as skops writes it (FunctionTransformer(func=...))."""
    from sklearn.preprocessing import FunctionTransformer

    return dump_model(FunctionTransformer(func=func))


class TouchMarker:
    """Unpickling this runs ``open(marker, "w")``: the pickle payload of the unpickling gadgets."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def hostile_files(tmp: Path, marker: Path) -> dict[str, bytes]:
    """name -> a model file that would create ``marker`` (or call a spied function) if loaded naively."""
    m = str(marker)
    pickled = pickle.dumps(TouchMarker(m))
    pickle_file = tmp / "planted.pkl"  # a file an attacker placed, e.g. as another artifact
    pickle_file.write_bytes(pickled)
    npy_file = tmp / "planted.npy"
    np.save(npy_file, np.array([TouchMarker(m)], dtype=object), allow_pickle=True)
    code = f"open({m!r}, 'w').close()"
    files = {
        # functions that execute a string
        "builtins.exec": with_payload(call("builtins.exec", json_node(code))),
        "builtins.eval": with_payload(call("builtins.eval", json_node(code))),
        "numpy runstring (exec under numpy.)": with_payload(
            call("numpy.testing._private.utils.runstring", json_node(code), node("DictNode", "builtins.dict",
                 content={}, key_types=node("ListNode", "builtins.list", content=[])))),
        # unpickling
        "pickle.loads": with_payload(call("pickle.loads", bytes_node("p.bin")), {"p.bin": pickled}),
        "numpy.load allow_pickle": with_payload(call("numpy.load", json_node(str(npy_file)), json_node(None),
                                                     json_node(True))),
        "numpy.lib._npyio_impl.load": with_payload(call("numpy.lib._npyio_impl.load", json_node(str(npy_file)),
                                                        json_node(None), json_node(True))),
        "numpy.lib.npyio.load": with_payload(call("numpy.lib.npyio.load", json_node(str(npy_file)))),
        "numpy.lib.format.read_array": with_payload(call(
            "numpy.lib.format.read_array", call("builtins.open", json_node(str(npy_file)), json_node("rb")),
            json_node(True))),
        "joblib.load": with_payload(call("joblib.load", json_node(str(pickle_file)))),
        # files: create, write, read
        "builtins.open": with_payload(call("builtins.open", json_node(m), json_node("w"))),
        "numpy.save": with_payload(call("numpy.save", json_node(m), json_node([1]))),
        "numpy.memmap": with_payload(call("numpy.memmap", json_node(m), json_node("uint8"), json_node("w+"),
                                          json_node(0), json_node([1]))),
        "numpy.fromfile": with_payload(call("numpy.fromfile", json_node(str(pickle_file)))),
        "numpy.loadtxt": with_payload(call("numpy.loadtxt", json_node(str(pickle_file)))),
        "numpy.genfromtxt": with_payload(call("numpy.genfromtxt", json_node(str(pickle_file)))),
        # importing modules (import-time code runs)
        "importlib.import_module": with_payload(call("importlib.import_module", json_node(HOSTILE_MODULE))),
        "builtins.__import__": with_payload(call("builtins.__import__", json_node(HOSTILE_MODULE))),
        "a type from an unknown module": with_payload(node("TypeNode", f"{HOSTILE_MODULE}.Anything")),
        "a function from an unknown module": with_payload(node("FunctionNode", f"{HOSTILE_MODULE}.anything")),
        "numpy.distutils": with_payload(call("numpy.distutils.exec_command.exec_command", json_node("true"))),
        # processes
        "os.system": with_payload(call("os.system", json_node(f"touch {m}"))),
        "subprocess.Popen": with_payload(call("subprocess.Popen", json_node(["touch", m]))),
        # an allowed class or loader used where skops would call it with file arguments
        "LossNode calling numpy.save": with_payload(node("LossNode", "numpy.save", content=json_node({}),
                                                         __reduce__={"args": tuple_node(json_node(m),
                                                                                        json_node([1]))})),
        "NdArrayNode calling pickle.loads": with_payload(node("NdArrayNode", "pickle.loads", type="numpy",
                                                              file="a.npy"), {"a.npy": npy_bytes(pickled)}),
        "an allowed class as ConstructorFromReduceNode": with_payload(call("sklearn.pipeline.Pipeline",
                                                                           json_node([]))),
        # gadgets that hand back callables for later
        "operator.attrgetter": dumped(operator.attrgetter("__class__")),
        "operator.methodcaller": dumped(operator.methodcaller("system", f"touch {m}")),
        "functools.partial(os.system)": dumped(functools.partial(os.system, f"touch {m}")),
        "a bound method": dumped(np.random.RandomState(0).seed),
        "numpy.load as a function": dumped(np.load),
        "builtins.exec as a function": dumped(exec),
        "a numpy ufunc": dumped(np.exp),
    }
    return files


SPIED = ("fromfile", "loadtxt", "genfromtxt")


@pytest.fixture
def marker(tmp_path, monkeypatch) -> Iterator[Path]:
    """The marker a payload would create; numpy's file readers are spied so that a call creates it too,
    and the hostile import probe module creates it when imported."""
    path = tmp_path / "ran.npy"  # numpy.save appends .npy to any other name

    def spy(*args, **kwargs):
        path.write_text("called")
        raise OSError("spied")

    for name in SPIED:
        monkeypatch.setattr(np, name, spy)
    probe = tmp_path / "probe"
    probe.mkdir()
    (probe / f"{HOSTILE_MODULE}.py").write_text(f"open({str(path)!r}, 'w').close()\nAnything = anything = 1\n")
    monkeypatch.syspath_prepend(str(probe))
    sys.modules.pop(HOSTILE_MODULE, None)
    yield path
    sys.modules.pop(HOSTILE_MODULE, None)


# payloads that leave the marker when loaded with every named type trusted (the control)
LIVE = {"builtins.exec", "builtins.eval", "numpy runstring (exec under numpy.)", "pickle.loads",
        "numpy.load allow_pickle", "numpy.lib._npyio_impl.load", "numpy.lib.format.read_array",
        "joblib.load", "builtins.open", "numpy.save", "numpy.memmap", "numpy.fromfile", "numpy.loadtxt",
        "numpy.genfromtxt", "importlib.import_module", "builtins.__import__", "a type from an unknown module",
        "a function from an unknown module", "os.system", "subprocess.Popen", "LossNode calling numpy.save",
        "NdArrayNode calling pickle.loads"}
CASES = sorted(LIVE | {"numpy.lib.npyio.load", "numpy.distutils", "an allowed class as ConstructorFromReduceNode",
                       "operator.attrgetter", "operator.methodcaller", "functools.partial(os.system)",
                       "a bound method", "numpy.load as a function", "builtins.exec as a function",
                       "a numpy ufunc"})


@pytest.mark.parametrize("case", CASES)
def test_a_hostile_model_file_is_refused_before_anything_in_it_runs(case, tmp_path, marker):
    import skops.io as sio

    hostile = hostile_files(tmp_path, marker)
    assert set(hostile) == set(CASES)
    data = hostile[case]
    assert untrusted_types(data), "the payload must be reported"
    with pytest.raises(IntegrityError) as refused:
        load_model(data)
    assert refused.value.exit_code == EXIT_CHECK_FAILED
    assert "outside the trusted list" in refused.value.message
    assert not marker.exists(), "code in the file ran"
    assert HOSTILE_MODULE not in sys.modules, "a module named by the file was imported"
    if case in LIVE:  # control: the same file, every type it names trusted, does run its payload
        try:
            sio.loads(data, trusted=sio.get_untrusted_types(data=data))
        except Exception:
            pass  # the payload ran while building; what it returns is no model
        deadline = time.monotonic() + 10  # subprocess.Popen's touch runs on its own
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert marker.exists(), f"the {case} payload is not live, so its refusal proves nothing"


def test_hostile_files_in_the_registry_exit_1_through_the_cli(tmp_path, marker, run_cli):
    root = write_project(tmp_path / "proj")
    assert run_cli("-C", root, "train")[0] == 0
    registry = ModelRegistry(root / ".mlci/registry")
    hostile = hostile_files(tmp_path, marker)
    for case in ("numpy runstring (exec under numpy.)", "numpy.save", "numpy.lib._npyio_impl.load",
                 "pickle.loads", "importlib.import_module", "operator.methodcaller"):
        # the record's sha256 is updated to match: only the allow-list stands between the file and a load
        registry.update(1, lambda r: None, artifacts={"model.skops": hostile[case]})
        code, _, err = run_cli("-C", root, "evaluate")
        assert code == 1, (case, err)
        assert "outside the trusted list" in err and "Traceback" not in err, case
        assert not marker.exists(), case


def test_a_damaged_or_deeply_nested_file_is_an_integrity_error_not_a_crash():
    for data in (b"not a zip", with_payload({"__loader__": 5, "__module__": "x", "__class__": "y"})):
        with pytest.raises(IntegrityError):
            load_model(data)
    deep = io.BytesIO()
    with zipfile.ZipFile(deep, "w") as archive:
        archive.writestr("schema.json", "[" * 200_000 + "]" * 200_000)
    with pytest.raises(IntegrityError):
        load_model(deep.getvalue())


def test_every_supported_estimator_needs_only_reviewed_types_and_round_trips(tmp_path):
    """Regenerates the allow-list from the supported catalogue: a type a supported model needs and
    the list lacks fails here, naming the model that needs it."""
    missing: dict[str, str] = {}
    count = 0
    for description, model, rows in fitted_models(tmp_path):
        data = dump_model(model)
        for kind, name in node_names(data):
            if name not in ALLOWED.get(kind, ()) and kind not in ("JsonNode", "CachedNode"):
                missing.setdefault(f"{name} ({kind})", description)
        if missing:
            continue
        loaded = load_model(data)
        np.testing.assert_array_equal(loaded.predict(rows), model.predict(rows), err_msg=description)
        if hasattr(model, "predict_proba"):
            np.testing.assert_array_equal(loaded.predict_proba(rows), model.predict_proba(rows),
                                          err_msg=description)
        count += 1
    assert missing == {}
    assert count == (len(CLASSIFIERS) + len(CLASSIFIER_VARIANTS)) * 2 + len(REGRESSORS) + len(REGRESSOR_VARIANTS) \
        + len(STEPS) * 3


def test_a_model_written_by_the_previous_release_still_loads():
    import pandas as pd

    expected = json.loads((FIXTURES / "release-model.json").read_text())
    model = load_model((FIXTURES / "release-model.skops").read_bytes())
    rows = pd.DataFrame(expected["rows"])
    assert model.predict(rows).tolist() == expected["predictions"]
    np.testing.assert_allclose(model.predict_proba(rows), expected["probabilities"], atol=1e-9)
    names = {name for _, name in schema_nodes(json.loads(zipfile.ZipFile(FIXTURES / "release-model.skops")
                                                          .read("schema.json")))}
    assert {"mlci.ops.features.CategoryText", "mlci.ops.features.BooleanAsFloat",
            "mlci.ops.features.DateParts"} <= names
