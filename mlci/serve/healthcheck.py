"""``python -m mlci.serve.healthcheck``: the image's HEALTHCHECK; exit 0 when /health/ready answers 200.

It asks the instance's private check port when one is set, so during a switch on one host it reports
on this container, not on whichever server the shared port happens to reach.
"""

from __future__ import annotations

import os
import sys

from mlci.adapters.serving_probe import http_get


def main() -> int:
    port = os.environ.get("MLCI_SERVE_CHECK_PORT") or os.environ.get("MLCI_SERVE_PORT") or "8080"
    try:
        status, _ = http_get(f"http://127.0.0.1:{int(port)}/health/ready", timeout=3)
        return 0 if status == 200 else 1
    except (OSError, ValueError):
        return 1


if __name__ == "__main__":
    sys.exit(main())
