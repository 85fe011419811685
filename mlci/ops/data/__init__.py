"""Data stage: ``mlci validate`` and ``mlci schema infer``."""
