"""Delivery stage: ``mlci build``/``push`` (the serving image) and ``mlci deploy``/``rollback``."""
