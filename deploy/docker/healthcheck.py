#!/usr/bin/env python
"""Docker HEALTHCHECK: GET /healthz of the service this container runs (stdlib only: no curl in slim).

The service is $SERVICE, else the ``services.<name>`` module that PID 1 runs (the entrypoint execs it);
its port is $<NAME>_PORT, else the default. Exit 0 when alive (200), 1 otherwise.

Liveness, not readiness: an unhealthy container is restarted (Swarm, an autoheal sidecar), and a
service that is not ready is often just waiting, as a metrics instance replaying its backlog does
(/readyz 503 until it is through), or the broker or database being away, which a restart does not
cure. A restart of a replaying instance would begin its replay again, in a loop.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

DEFAULT_PORTS = {"intake": 8000, "router": 8001, "metrics": 8002}
LIVENESS_PATH = "/healthz"  # every service's (shared/http/health.py)


def running_service(cmdline: str = "/proc/1/cmdline") -> str | None:
    if os.environ.get("SERVICE") in DEFAULT_PORTS:
        return os.environ["SERVICE"]
    try:
        with open(cmdline, "rb") as handle:
            argv = handle.read().decode(errors="replace").split("\0")
    except OSError:
        return None
    for previous, arg in zip(["", *argv], argv, strict=False):
        name = arg.removeprefix("services.")
        if arg.startswith("services.") and name in DEFAULT_PORTS:
            return name
        # Under an init process (docker run --init, tini), PID 1 is that process and the
        # entrypoint's own argument names the service: docker-init -- /usr/local/bin/ticket-router intake
        if previous.endswith("ticket-router") and arg in DEFAULT_PORTS:
            return arg
    return None


def main() -> int:
    service = running_service()
    if service is None:
        print("not a service container: nothing to check", file=sys.stderr)
        return 1
    port = int(os.environ.get(f"{service.upper()}_PORT", DEFAULT_PORTS[service]))
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{LIVENESS_PATH}", timeout=4) as response:
            return 0 if response.status == 200 else 1
    except (urllib.error.URLError, OSError) as exc:
        print(f"{service} not alive: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
