"""Jenkins: the generated pipelines, job ``config.xml``, and ``mlci jenkins sync|build|status|lint``."""
