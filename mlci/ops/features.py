"""The import path of mlci's preprocessing classes in model files written by release 0.1.0.

A model file names each class by import path; loading one written before the preprocessing moved to
``mlci.ml.features`` looks the classes up here. Nothing else should import this module.
"""

from mlci.ml.features import BooleanAsFloat, CategoryText, DateParts

__all__ = ["BooleanAsFloat", "CategoryText", "DateParts"]
