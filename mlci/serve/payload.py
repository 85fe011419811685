"""The shape of a ``/predict`` body: ``{"records": [...]}`` or a JSON list of records. The server reads it
this way, and so does the shadow scorer process, which receives the body as the server received it."""

from __future__ import annotations

from typing import Any


def records_of(payload: Any) -> list[Any] | None:
    """The records of a parsed body, or None when it has neither shape."""
    if isinstance(payload, list):
        return payload
    if isinstance(payload, dict) and isinstance(payload.get("records"), list) and len(payload) == 1:
        return payload["records"]
    return None
