"""Model stage: ``mlci train``, ``evaluate``, ``gate``, the registry and each version's lineage."""
