"""The project as a whole: ``mlci init``, the bundled example, ``mlci run``, the config JSON Schemas."""
