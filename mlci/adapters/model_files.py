"""Model files in skops format, loaded only when every node inside is on a reviewed allow-list.

Models are never unpickled from disk, and loading one never runs code that the file chooses. A skops
file is a zip holding ``schema.json``: a tree of nodes, each naming a loader (the node kind) and a type
by module and name. skops imports that name and, depending on the kind, returns it, creates an
instance without calling it (``cls.__new__`` + ``__setstate__``), or calls it with arguments read from
the file. skops' own trust check knows only type names, and it trusts by default every NumPy and SciPy
ufunc and every scikit-learn estimator, whatever the node kind.

So before skops sees the file, ``check_model_file`` walks every node of ``schema.json`` and accepts it
only when the exact pair (node kind, type name) is listed in ``ALLOWED`` below. Nothing is imported and
nothing is called until the whole tree passed. Node kinds that hand back a function, a bound method, a
``functools.partial`` or an ``operator`` gadget (FunctionNode, MethodNode, PartialNode,
OperatorFuncNode), or that call a file-chosen name with file-chosen arguments
(ConstructorFromReduceNode), are refused outright: no supported model needs them.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Iterator
from typing import Any

from mlci.errors import IntegrityError

MODEL_FILE = "model.skops"  # a model version's model artifact in the registry

# What skops does with the named type, per node kind (skops/io/_general.py, _numpy.py, _sklearn.py):
#   ObjectNode       cls.__new__(cls), then __setstate__/__dict__ from child nodes (no call with arguments)
#   TypeNode         returns the type object itself (used as a dtype or a dict key type)
#   DictNode, ListNode, TupleNode, SetNode   the container type, called with already-loaded items
#   NdArrayNode      numpy.load(allow_pickle=False); a name other than numpy.ndarray is called with the array
#   DTypeNode        the dtype of an array loaded as above (the name is not used)
#   RandomStateNode  numpy.random.RandomState(), then set_state(loaded state)
#   TreeNode         sklearn.tree._tree.Tree(*loaded ints/arrays), then __setstate__
#   LossNode         the named loss class called with loaded numbers, then __setstate__
#   JsonNode, BytesNode, SliceNode, CachedNode   plain data; the name is not used
# Produced by training every estimator and model.steps transformer in tests/supported_models.py on
# binary, multiclass and regression data (``python -m tests.supported_models`` prints what they
# need, with scikit-learn 1.9, NumPy 2.4, skops 0.16); every entry was reviewed: a class whose creation
# (as the node kind does it) runs no code

# chosen by the file. tests/test_model_files.py regenerates the list and fails on a missing entry.
_NUMPY_SCALARS = ("numpy.float64", "numpy.float32", "numpy.int64", "numpy.int32", "numpy.uint64", "numpy.uint32",
                  "numpy.uint8", "numpy.int8", "numpy.bool")  # numeric scalar types: calling one converts numbers
ALLOWED: dict[str, frozenset[str]] = {
    "ObjectNode": frozenset({
        # mlci's own preprocessing (mlci/ml/features.py); models written by release 0.1.0 name the old path,
        # mlci.ops.features, which re-exports the same classes
        "mlci.ml.features.BooleanAsFloat", "mlci.ml.features.CategoryText", "mlci.ml.features.DateParts",
        "mlci.ops.features.BooleanAsFloat", "mlci.ops.features.CategoryText", "mlci.ops.features.DateParts",
        # schema-derived preprocessing and the pipeline around it
        "sklearn.pipeline.Pipeline", "sklearn.compose._column_transformer.ColumnTransformer",
        "sklearn.impute._base.SimpleImputer", "sklearn.preprocessing._data.StandardScaler",
        "sklearn.preprocessing._encoders.OneHotEncoder",
        # model.steps transformers
        "sklearn.decomposition._pca.PCA", "sklearn.decomposition._truncated_svd.TruncatedSVD",
        "sklearn.feature_selection._univariate_selection.SelectKBest",
        "sklearn.feature_selection._variance_threshold.VarianceThreshold",
        "sklearn.kernel_approximation.Nystroem", "sklearn.preprocessing._data.MinMaxScaler",
        "sklearn.preprocessing._data.RobustScaler", "sklearn.preprocessing._polynomial.PolynomialFeatures",
        # estimators
        "sklearn.linear_model._logistic.LogisticRegression", "sklearn.linear_model._ridge.Ridge",
        "sklearn.linear_model._ridge.RidgeClassifier", "sklearn.linear_model._base.LinearRegression",
        "sklearn.linear_model._coordinate_descent.Lasso", "sklearn.linear_model._coordinate_descent.ElasticNet",
        "sklearn.linear_model._huber.HuberRegressor", "sklearn.linear_model._perceptron.Perceptron",
        "sklearn.linear_model._stochastic_gradient.SGDClassifier",
        "sklearn.linear_model._stochastic_gradient.SGDRegressor",
        "sklearn.tree._classes.DecisionTreeClassifier", "sklearn.tree._classes.DecisionTreeRegressor",
        "sklearn.tree._classes.ExtraTreeClassifier", "sklearn.tree._classes.ExtraTreeRegressor",
        "sklearn.ensemble._forest.RandomForestClassifier", "sklearn.ensemble._forest.RandomForestRegressor",
        "sklearn.ensemble._forest.ExtraTreesClassifier", "sklearn.ensemble._forest.ExtraTreesRegressor",
        "sklearn.ensemble._gb.GradientBoostingClassifier", "sklearn.ensemble._gb.GradientBoostingRegressor",
        "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingClassifier",
        "sklearn.ensemble._hist_gradient_boosting.gradient_boosting.HistGradientBoostingRegressor",
        "sklearn.ensemble._weight_boosting.AdaBoostClassifier",
        "sklearn.ensemble._weight_boosting.AdaBoostRegressor",
        "sklearn.svm._classes.SVC", "sklearn.svm._classes.SVR", "sklearn.svm._classes.LinearSVC",
        "sklearn.svm._classes.LinearSVR", "sklearn.neighbors._classification.KNeighborsClassifier",
        "sklearn.neighbors._regression.KNeighborsRegressor", "sklearn.naive_bayes.GaussianNB",
        "sklearn.naive_bayes.BernoulliNB", "sklearn.neural_network._multilayer_perceptron.MLPClassifier",
        "sklearn.neural_network._multilayer_perceptron.MLPRegressor",
        "sklearn.discriminant_analysis.LinearDiscriminantAnalysis",
        # the estimators' fitted internals: label encoders, boosting's initial model, histogram
        # binning and tree predictors, the MLP optimiser, loss and link objects (plain numbers/arrays)
        "sklearn.preprocessing._label.LabelBinarizer", "sklearn.preprocessing._label.LabelEncoder",
        "sklearn.dummy.DummyClassifier", "sklearn.dummy.DummyRegressor",
        "sklearn.ensemble._hist_gradient_boosting.binning._BinMapper",
        "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
        "sklearn.neural_network._stochastic_optimizers.AdamOptimizer",
        "sklearn.neural_network._stochastic_optimizers.SGDOptimizer",
        "sklearn._loss.link.IdentityLink", "sklearn._loss.link.Interval", "sklearn._loss.link.LogitLink",
        "sklearn._loss.link.MultinomialLogit", "sklearn._loss.loss.HalfBinomialLoss",
        "sklearn._loss.loss.HalfMultinomialLoss", "sklearn._loss.loss.HalfSquaredError",
        "sklearn._loss.loss.AbsoluteError", "sklearn._loss.loss.HuberLoss", "sklearn._loss.loss.PinballLoss",
    }),
    # Cython loss objects, created with the numbers stored for them
    "LossNode": frozenset({
        "sklearn._loss._loss.CyHalfBinomialLoss", "sklearn._loss._loss.CyHalfMultinomialLoss",
        "sklearn._loss._loss.CyHalfSquaredError", "sklearn._loss._loss.CyAbsoluteError",
        "sklearn._loss._loss.CyHuberLoss", "sklearn._loss._loss.CyPinballLoss",
        "sklearn.linear_model._sgd_fast.Hinge", "sklearn.linear_model._sgd_fast.ModifiedHuber",
    }),
    "TreeNode": frozenset({"sklearn.tree._tree.Tree"}),
    "RandomStateNode": frozenset({"numpy.random.mtrand.RandomState"}),
    # skops also checks that the bit generator it names is a numpy.random BitGenerator subclass
    "RandomGeneratorNode": frozenset({"numpy.random._generator.Generator"}),
    "NdArrayNode": frozenset({"numpy.ndarray", *_NUMPY_SCALARS}),
    "DTypeNode": frozenset({"numpy.dtype"}),
    "TypeNode": frozenset({"builtins.str", "builtins.int", "builtins.float", "builtins.bool", *_NUMPY_SCALARS}),
    "DictNode": frozenset({"builtins.dict"}),
    "ListNode": frozenset({"builtins.list"}),
    "TupleNode": frozenset({"builtins.tuple"}),
    "SliceNode": frozenset({"builtins.slice"}),
    # The one function: SelectKBest's default score_func (F-test statistics on arrays). It is only
    # stored (and called by fit, never at load or predict); model.params cannot name another function.
    "FunctionNode": frozenset({"sklearn.feature_selection._univariate_selection.f_classif"}),
}

# Kinds whose type name skops never imports or calls, whatever it says: a JSON value (json.loads of
# the content) and a reference to a node elsewhere in the file (itself checked).
_PLAIN_DATA = frozenset({"JsonNode", "CachedNode"})


def dump_model(model: Any) -> bytes:
    import skops.io as sio

    return sio.dumps(model)


def untrusted_types(data: bytes) -> list[str]:
    """The file's nodes that are not on the allow-list, as ``type name (node kind)``; empty when it may load."""
    return sorted({f"{name} ({kind})" for kind, name in schema_nodes(_read_schema(data))
                   if not _allowed(kind, name)})


def check_model_file(data: bytes) -> None:
    refused = untrusted_types(data)
    if refused:
        raise IntegrityError(f"model file contains types outside the trusted list: {', '.join(refused[:5])}",
                             hint="only the reviewed scikit-learn types of supported estimators load "
                                  "(docs/model.md); retrain with a supported estimator")


def load_model(data: bytes) -> Any:
    import skops.io as sio

    check_model_file(data)
    # every name is now vetted for the kind of node it sits in; tell skops to trust exactly those
    names = sorted({name for kind, name in schema_nodes(_read_schema(data)) if kind not in _PLAIN_DATA})
    try:
        return sio.loads(data, trusted=names)
    except Exception as exc:
        raise IntegrityError(f"model file cannot be loaded ({type(exc).__name__}: {exc})") from None


def schema_nodes(schema: Any) -> Iterator[tuple[str, str]]:
    """(node kind, type name) of every node in a skops ``schema.json``, however deeply nested.

    Every JSON object with a ``__loader__`` key is taken as a node, wherever it sits, so no node that
    skops would build escapes the check. Iterative: a hostile, deeply nested file cannot recurse.
    """
    stack = [schema]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            if "__loader__" in value:
                yield _node_identity(value)
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)


def _node_identity(node: dict[str, Any]) -> tuple[str, str]:
    kind, module, name = node.get("__loader__"), node.get("__module__"), node.get("__class__")
    if not (isinstance(kind, str) and isinstance(module, str) and isinstance(name, str)):
        raise IntegrityError("model file has a malformed node (loader, module and class must be text)")
    return kind, f"{module}.{name}"


def _read_schema(data: bytes) -> Any:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return json.loads(archive.read("schema.json"))
    except (zipfile.BadZipFile, KeyError, ValueError, UnicodeDecodeError, RecursionError, OSError) as exc:
        raise IntegrityError(f"not a readable skops model file ({type(exc).__name__})",
                             hint="the file is damaged or not a model written by mlci") from None


def _allowed(kind: str, name: str) -> bool:
    if kind in _PLAIN_DATA:
        return True
    return name in ALLOWED.get(kind, ())
