"""Monitor stage: ``mlci monitor`` (sources, profile, checks, metrics, report) and ``mlci alerts``."""
