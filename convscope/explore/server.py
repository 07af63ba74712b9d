"""Start the explorer: load the model, check the address and token, print the URL, run uvicorn."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

from convscope.explore.security import is_loopback, new_token
from convscope.models import DEFAULT_MODEL, load_model


def check_address(host: str, token: str | None, no_token: bool = False) -> str | None:
    """The token to require: the given one or a new random one, on every host; ``None`` only when ``no_token``
    on a loopback address (any local program and user may then use the explorer; :func:`serve` warns)."""
    if token is not None and token.strip() == "":
        raise ValueError("an empty --token would let anyone in; leave --token out for a random one")
    if no_token:
        if token is not None:
            raise ValueError("give either --token or --no-token, not both")
        if not is_loopback(host):
            raise ValueError(f"--no-token is refused on {host}: other computers could use the explorer; "
                             "leave --no-token out (a token is printed in the URL) or listen on 127.0.0.1")
        return None
    return token or new_token()


def free_port(host: str, port: int) -> int:
    """``port``, or a free one when it is 0; a port in use is an error that says what to do."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
        try:
            probe.bind((host, port))
        except OSError as error:
            raise ValueError(f"cannot listen on {host}:{port} ({error.strerror}); give another --port "
                             "(0 picks a free one)") from error
        return probe.getsockname()[1]


def serve(sources: list[Path], *, model: str | None = None, weights: Path | None = None, device: str | None = None,
          scan: Path | None = None, checks: Path | None = None, host: str = "127.0.0.1", port: int = 8765,
          token: str | None = None, cache: Path | None = None, methods: list[str] | None = None,
          no_token: bool = False, classes: Path | None = None, atlas: Path | None = None) -> None:
    import uvicorn

    from convscope.explore.app import create_app
    from convscope.explore.state import Explorer

    token = check_address(host, token, no_token)
    port = free_port(host, port)
    loaded = load_model(model or DEFAULT_MODEL, weights=weights, device=device, classes=classes)
    explorer = Explorer(loaded, sources, scan=scan, checks=checks, cache=cache,
                        weights=str(weights) if weights else None, token=token, methods=methods, atlas=atlas)
    shown = socket.gethostname() if host in ("0.0.0.0", "::") else f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}/" + (f"?token={token}" if token else "")
    print(f"convscope explorer: {loaded.name} on {loaded.device}; open {url}", flush=True)
    print(f"  API: http://{shown}:{port}/api (OpenAPI: /openapi.json); stop with Ctrl-C", flush=True)
    if token is None:
        print("  warning: --no-token: every program and user of this computer can use the explorer and read the "
              "pictures it serves", file=sys.stderr, flush=True)
    uvicorn.run(create_app(explorer), host=host, port=port, log_level="warning", timeout_graceful_shutdown=2)
