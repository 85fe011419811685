"""``mlci serve``: the model server on this machine."""

from __future__ import annotations

import click

from mlci.cli.context import AppContext, pass_app
from mlci.cli.output import log


@click.command()
@click.option("--model", "ref", default="latest", show_default=True, help="Model version, alias or 'latest'.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8080, show_default=True, type=click.IntRange(1, 65535), help="Port.")
@click.option("--workers", type=click.IntRange(1, 64), help="Server processes (default: serve.workers).")
@click.option("--no-log", is_flag=True, help="Do not write the prediction log.")
@pass_app
def serve(app: AppContext, ref: str, host: str, port: int, workers: int | None, no_log: bool) -> int:
    """Serve a registered model over HTTP until SIGTERM or Ctrl-C.

    POST /predict, GET /health/live, /health/ready, /version, /openapi.json, /metrics.
    Predictions are logged to serve.log_dir for `mlci monitor`.
    """
    from mlci.ops.deliver.settings import serve_foreground, serve_settings

    settings = serve_settings(app.project(), ref=ref, host=host, port=port, workers=workers, log=not no_log)
    log(f"serving model version {settings.model} on http://{host}:{port} (Ctrl-C stops)")
    return serve_foreground(settings)
