"""The ML libraries that both ``mlci.ops`` and ``mlci.serve`` use.

This layer sits below ops and serve: it may import ``mlci.core``, ``mlci.errors``, NumPy and pyarrow,
never ``mlci.ops``, ``mlci.serve``, ``mlci.cli`` or ``mlci.adapters``.
"""
