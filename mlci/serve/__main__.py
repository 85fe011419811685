"""``python -m mlci.serve``: the image's entry point (``mlci serve`` does the same from mlci.yaml).

Every option also reads an environment variable (``MLCI_SERVE_PORT`` ...), so a deployment can change
the port or the limits without changing the image.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from mlci.serve.settings import ENV_PREFIX, ServeSettings


def _env(name: str, default):
    """``MLCI_SERVE_<NAME>`` as the type of ``default`` (``default`` when unset or empty)."""
    variable = ENV_PREFIX + name.upper()
    value = os.environ.get(variable)
    if value in (None, ""):
        return default
    try:
        return type(default)(value)
    except ValueError:
        print(f"python -m mlci.serve: {variable}={value!r} is not a valid {type(default).__name__}",
              file=sys.stderr)
        raise SystemExit(2) from None


def parse(argv: list[str] | None = None) -> ServeSettings:
    parser = argparse.ArgumentParser(prog="python -m mlci.serve", description="Serve a registered model.")
    parser.add_argument("--registry", type=Path, default=Path(_env("registry", "/app/registry")))
    parser.add_argument("--model", default=_env("model", "latest"))
    parser.add_argument("--host", default=_env("host", "0.0.0.0"))
    parser.add_argument("--port", type=int, default=_env("port", 8080))
    parser.add_argument("--check-port", type=int, default=_env("check_port", 0))
    parser.add_argument("--workers", type=int, default=_env("workers", 1))
    parser.add_argument("--max-body-bytes", type=int, default=_env("max_body_bytes", 1_048_576))
    parser.add_argument("--max-rows", type=int, default=_env("max_rows", 1000))
    parser.add_argument("--log-dir", default=_env("log_dir", ""), help="prediction log directory ('' turns it off)")
    parser.add_argument("--log-max-bytes", type=int, default=_env("log_max_bytes", 50_000_000))
    parser.add_argument("--log-queue-rows", type=int, default=_env("log_queue_rows", 100_000))
    parser.add_argument("--unknown-categories", choices=("accept", "reject"),
                        default=_env("unknown_categories", "accept"))
    parser.add_argument("--deployment", default=_env("deployment", ""),
                        help="<project>/<environment> this server was deployed as (shown by /version)")
    parser.add_argument("--experiment-mode", choices=("", "shadow", "canary"), default=_env("experiment_mode", ""))
    parser.add_argument("--experiment-challenger", default=_env("experiment_challenger", ""))
    parser.add_argument("--experiment-share", type=float, default=_env("experiment_share", 0.0))
    parser.add_argument("--experiment-key", default=_env("experiment_key", ""))
    parser.add_argument("--experiment-id", default=_env("experiment_id", ""))
    parser.add_argument("--experiment-registry", default=_env("experiment_registry", ""))
    parser.add_argument("--experiment-queue-rows", type=int, default=_env("experiment_queue_rows", 10_000))
    parser.add_argument("--shadow-cpu-share", type=float,
                        default=_env("shadow_cpu_share", ServeSettings.shadow_cpu_share),
                        help="shadow: largest share of one CPU each scorer process may use")
    args = parser.parse_args(argv)
    if not 0 < args.shadow_cpu_share <= 1:
        print(f"python -m mlci.serve: --shadow-cpu-share ({ENV_PREFIX}SHADOW_CPU_SHARE) must be above 0 "
              f"and at most 1, not {args.shadow_cpu_share}", file=sys.stderr)
        raise SystemExit(2)
    return ServeSettings(registry=args.registry, model=str(args.model), host=args.host, port=args.port,
                         check_port=args.check_port or None, workers=args.workers,
                         max_body_bytes=args.max_body_bytes, max_rows=args.max_rows,
                         log_dir=Path(args.log_dir) if args.log_dir else None, log_max_bytes=args.log_max_bytes,
                         log_queue_rows=args.log_queue_rows, unknown_categories=args.unknown_categories,
                         deployment=args.deployment, experiment_mode=args.experiment_mode,
                         experiment_challenger=str(args.experiment_challenger),
                         experiment_share=args.experiment_share, experiment_key=args.experiment_key,
                         experiment_id=args.experiment_id, experiment_queue_rows=args.experiment_queue_rows,
                         shadow_cpu_share=args.shadow_cpu_share,
                         experiment_registry=Path(args.experiment_registry) if args.experiment_registry else None)


def main(argv: list[str] | None = None) -> int:
    from mlci.serve.runner import run_server

    settings = parse(argv)
    try:
        return run_server(settings)
    except OSError as exc:
        print(f"mlci.serve: cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}",
              file=sys.stderr)
        return 3


if __name__ == "__main__":
    sys.exit(main())
