"""Secrets never reach an MLflow error message: the tracking URI's user info and query, and MLflow's
credential variables, whatever characters they hold and wherever the client's message repeats them."""

from __future__ import annotations

import random
import string
import urllib.parse

import pytest

from mlci.adapters.mlflow_registry import reason, redact_text

ALPHABET = string.ascii_letters + string.digits + "-._~!$&'()*+,;=%"


def _secret(rng: random.Random) -> str:
    return "".join(rng.choice(ALPHABET) for _ in range(rng.randint(6, 24)))


@pytest.mark.parametrize("seed", range(200))
def test_no_secret_survives_in_any_position(seed, monkeypatch):
    rng = random.Random(seed)
    user, password, token, env_password = (_secret(rng) for _ in range(4))
    quoted = urllib.parse.quote(password, safe="")
    uri = f"https://{urllib.parse.quote(user, safe='')}:{quoted}@mlflow.example.com:5000/base?token={token}"
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", env_password)
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", token)
    message = (f"API request to {uri}/api/2.0/mlflow/registered-models/get failed with exception "
               f"HTTPSConnectionPool(host='mlflow.example.com', port=5000): Max retries exceeded with url: "
               f"/base?token={token}/api/2.0 (auth {env_password}) {quoted}")
    cleaned = redact_text(message, uri)
    for secret in (quoted, token, env_password):
        assert secret not in cleaned
    assert "mlflow.example.com:5000/base" in cleaned


@pytest.mark.parametrize("message, expected", [
    ("HTTPConnectionPool(host='h', port=1): Max retries exceeded (Caused by NewConnectionError(...))",
     "connection refused"),
    ("API request to http://h/x failed with exception ReadTimeout", "timed out"),
    ("API request failed: too many 500 error responses", "the server answered HTTP 500"),
    ("API request to endpoint failed with error code 401 != 200", "authentication failed (HTTP 401)"),
])
def test_the_cause_in_a_few_words(message, expected):
    assert reason(message) == expected
