"""Arrow buffer helpers: they live in ``mlci.ml.arrow`` (the schema-rule evaluators need them too)."""

from mlci.ml.arrow import numpy_to_arrow, numpy_values, python_to_arrow, true_positions

__all__ = ["numpy_to_arrow", "numpy_values", "python_to_arrow", "true_positions"]
