"""The model server against its own ``/openapi.json``: a property-based API fuzzer (schemathesis) with
every check — no 5xx, every answer as documented, no request that is valid under the published
document refused (positive data acceptance), no invalid one accepted (negative data rejection).

The document is generated from the same compiled schema rules the server enforces, so the fuzzer's
idea of "valid" is the server's. The app runs in-process (ASGI), with a bounded number of examples.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.generation import GenerationMode

from mlci.serve.app import create_app
from mlci.serve.settings import ServeSettings
from tests.serving_support import copy_example, register_version

EXAMPLES = {"/predict": 80}  # per operation; the GET endpoints take no input: a few calls each


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    project = copy_example(tmp_path_factory.mktemp("fuzz"))
    register_version(project)
    server = create_app(ServeSettings(registry=project / ".mlci" / "registry", max_rows=20),
                        load_in_background=False)
    server.state.server.load()
    return server


def _document(app) -> dict:
    from starlette.testclient import TestClient

    return TestClient(app).get("/openapi.json").json()


# The documented answer to a batch over ``max_rows`` (the document's ``maxItems``) is 413, which the
# fuzzer's list of rejections lacks; every other status it expects is kept.
_REJECTIONS = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429"]
CONFIG = {"checks": {"negative_data_rejection": {"expected-statuses": _REJECTIONS}}}


def _operations(app):
    from schemathesis.config import SchemathesisConfig

    schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=SchemathesisConfig.from_dict(CONFIG))
    return [result.ok() for result in schema.get_all_operations()]


def _instant(text: str) -> datetime:
    """An RFC 3339 date-time as an aware datetime (the test's own reading, not the server's)."""
    moment = datetime.fromisoformat(text.upper().replace("Z", "+00:00"))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _datetime_bounds(document: dict) -> dict[str, tuple[datetime | None, datetime | None]]:
    """``formatMinimum``/``formatMaximum`` per record field: JSON Schema 2020-12 has no keyword for
    datetime bounds, so the document states them with ajv-formats' keywords, which the fuzzer's
    generator does not know; the test applies them, as a client reading the document would."""
    record = document["components"]["schemas"]["Record"]["properties"]
    return {name: (_instant(field["formatMinimum"]) if "formatMinimum" in field else None,
                   _instant(field["formatMaximum"]) if "formatMaximum" in field else None)
            for name, field in record.items() if isinstance(field, dict) and field.get("format") == "date-time"}


def _within_published_bounds(body, bounds) -> bool:
    records = body.get("records") if isinstance(body, dict) else body
    for record in records if isinstance(records, list) else []:
        for name, (low, high) in bounds.items():
            value = record.get(name) if isinstance(record, dict) else None
            if isinstance(value, str):
                try:
                    moment = _instant(value)
                except ValueError:
                    continue
                if (low and moment < low) or (high and moment > high):
                    return False
    return True


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=lambda m: m.value)
def test_the_fuzzer_finds_no_failure_against_the_published_document(app, mode):
    bounds = _datetime_bounds(_document(app))
    assert bounds["application_date"][0] == datetime(2020, 1, 1, tzinfo=UTC)
    operations = _operations(app)
    assert {op.path for op in operations} >= {"/predict", "/health/live", "/health/ready", "/version"}
    for operation in operations:
        if mode is GenerationMode.NEGATIVE and operation.path not in EXAMPLES:
            continue  # no input to make invalid
        strategy = operation.as_strategy(generation_mode=mode)
        if mode is GenerationMode.POSITIVE:
            strategy = strategy.filter(lambda case: _within_published_bounds(case.body, bounds))

        @settings(max_examples=EXAMPLES.get(operation.path, 5), deadline=None, suppress_health_check=list(HealthCheck),
                  derandomize=True, database=None)
        @given(case=strategy)
        def fuzz(case):
            case.call_and_validate()

        fuzz()


def test_the_published_datetime_bounds_are_the_enforced_ones(app):
    """The fuzzer cannot generate around ``formatMinimum``; this sends values at and beside each
    published bound, naive, in UTC and with offsets, and expects 200 inside and 422 outside."""
    from starlette.testclient import TestClient

    document = _document(app)
    assert _datetime_bounds(document)["application_date"] == (datetime(2020, 1, 1, tzinfo=UTC),
                                                              datetime(2030, 12, 31, tzinfo=UTC))
    good = {"age": 30, "income": 50000.0, "loan_amount": 10000.0, "loan_term": 36, "credit_score": 700,
            "debt_ratio": 0.3, "region": "north", "home_ownership": "rent", "has_guarantor": False,
            "customer_id": "C0000000001", "employment": "salaried"}
    with TestClient(app) as client:
        for name, (low, high) in _datetime_bounds(document).items():
            for bound, outside in ((low, -1), (high, 1)):
                if bound is None:
                    continue
                for text, inside in ((bound.strftime("%Y-%m-%dT%H:%M:%S"), True),
                                     (bound.strftime("%Y-%m-%dT%H:%M:%SZ"), True),
                                     (bound.strftime("%Y-%m-%dT%H:%M:%S.000001Z") if outside > 0
                                      else _minus_one_microsecond(bound), False),
                                     (_shifted(bound, outside), False)):
                    answer = client.post("/predict", json=[{**good, name: text}])
                    assert answer.status_code == (200 if inside else 422), (name, text, answer.text)


def _minus_one_microsecond(bound: datetime) -> str:
    from datetime import timedelta

    return (bound - timedelta(microseconds=1)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _shifted(bound: datetime, direction: int) -> str:
    """The bound's wall-clock time with an offset that moves the instant one hour outside."""
    offset = "+01:00" if direction < 0 else "-01:00"
    return bound.strftime("%Y-%m-%dT%H:%M:%S") + offset
