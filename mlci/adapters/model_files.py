"""Model files in skops format, loaded only when every type inside is on a reviewed allow-list.

Models are never unpickled from disk. ``load_model`` first asks skops which types the file would
create and refuses any outside ``TRUSTED_PREFIXES``/``TRUSTED_TYPES``.
"""

from __future__ import annotations

from typing import Any

from mlci.errors import IntegrityError

MODEL_FILE = "model.skops"  # a model version's model artifact in the registry

# Reviewed: these packages' estimators and array types; nothing that runs arbitrary code on load.
TRUSTED_PREFIXES = ("sklearn.", "numpy.", "scipy.sparse.", "mlci.ops.features.")
TRUSTED_TYPES = frozenset({
    "builtins.slice", "builtins.object", "builtins.type",
    "collections.OrderedDict", "collections.defaultdict",
    "scipy.special._ufuncs.expit", "scipy.special._ufuncs.logit",
    "numpy.dtype",
})
# Never trusted even under a trusted prefix: they can load or execute other code.
FORBIDDEN = frozenset({"numpy.load", "numpy.lib.npyio.load", "numpy.fromfile"})


def dump_model(model: Any) -> bytes:
    import skops.io as sio

    return sio.dumps(model)


def untrusted_types(data: bytes) -> list[str]:
    import skops.io as sio

    try:
        found = sio.get_untrusted_types(data=data)
    except Exception as exc:  # skops raises zipfile/json errors on a damaged file
        raise IntegrityError(f"not a readable skops model file ({type(exc).__name__}: {exc})") from None
    return [t for t in found if not _trusted(t)]


def load_model(data: bytes) -> Any:
    import skops.io as sio

    refused = untrusted_types(data)
    if refused:
        raise IntegrityError(f"model file contains types outside the trusted list: {', '.join(refused[:5])}",
                             hint="only scikit-learn, NumPy and SciPy types are loaded; retrain with those")
    allowed = sio.get_untrusted_types(data=data)
    try:
        return sio.loads(data, trusted=allowed)
    except Exception as exc:
        raise IntegrityError(f"model file cannot be loaded ({type(exc).__name__}: {exc})") from None


def _trusted(type_name: str) -> bool:
    if type_name in FORBIDDEN:
        return False
    return type_name in TRUSTED_TYPES or type_name.startswith(TRUSTED_PREFIXES)
