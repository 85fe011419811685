"""The ML libraries that both ``mlci.ops`` and ``mlci.serve`` use.

This layer sits below ops and serve: it may import ``mlci.core``, ``mlci.errors`` and the numeric
libraries (NumPy, pyarrow, pandas, SciPy, scikit-learn), never ``mlci.ops``, ``mlci.serve``, ``mlci.cli``
or ``mlci.adapters`` (tests/test_layers.py). Here: ``tabular`` (reading CSV and Parquet), ``features``,
``metrics``, ``drift`` (statistics), ``row_identity`` and the schema-rule compiler with its evaluators.
"""
