"""The model server: a Starlette app on uvicorn that validates requests against the data schema, predicts,
exposes health, version, OpenAPI and Prometheus metrics, and logs every predicted row for ``mlci monitor``.

This subpackage runs inside the serving image, which installs only starlette, uvicorn, prometheus_client, orjson,
numpy, scipy, scikit-learn, skops and PyYAML: it must not import pandas, matplotlib, pyarrow, click, Jinja2,
docker or anything from ``mlci.cli``.
"""
