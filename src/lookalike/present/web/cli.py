"""``lookalike serve``: run the web app and REST API on uvicorn."""

from __future__ import annotations

import argparse
import ipaddress
import os
import socket
import sys
from typing import TYPE_CHECKING

from lookalike.config import TOKEN_ENV, Settings, token_from_environment
from lookalike.errors import LookalikeError

if TYPE_CHECKING:  # the server's modules load only when it runs (lookalike --help stays light)
    from lookalike.present.web.service import ServerConfig


def add_parser(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], common: argparse.ArgumentParser
) -> None:
    p = sub.add_parser(
        "serve",
        parents=[common],
        help="web page and REST API for searching the index",
        description="Serve a page to search the index by dropping an image, and its REST API "
        "(OpenAPI at /docs). Binds to 127.0.0.1; any other address needs a token. Answers "
        "only requests addressed to a loopback name, the bound address or --allowed-host.",
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default 8000; 0 picks a free one)")
    p.add_argument(
        "--token",
        default=None,
        help=f"required on every request; needed off loopback (default ${TOKEN_ENV}, which "
        "unlike this flag does not show in the process list)",
    )
    p.add_argument(
        "--max-upload-mb", type=float, default=20.0, help="largest upload accepted (default 20)"
    )
    p.add_argument(
        "--max-upload-pixels",
        type=float,
        default=40e6,
        metavar="N",
        help="largest uploaded image, in pixels as decoded (a JPEG at reduced size; "
        "default 40e6: 40 megapixels)",
    )
    p.add_argument(
        "--allowed-host",
        action="append",
        default=[],
        metavar="NAME",
        help="also answer requests for host name NAME, as a proxy or another machine "
        "addresses this server (repeatable; default: localhost, 127.0.0.1, [::1] and --host)",
    )
    p.add_argument(
        "--allow-root",
        action="append",
        default=None,
        metavar="DIR",
        help="add jobs (the page's 'add a folder', POST /api/jobs) may add only under DIR "
        "(repeatable; default: the folders the index already holds images in)",
    )
    p.add_argument(
        "--cors-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="allow cross-origin requests from ORIGIN (repeatable; default: none)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=0,
        help="search threads (default: one per CPU core); uploads get half as many of their own",
    )
    p.set_defaults(run=run_serve)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve anywhere


def is_wildcard(host: str) -> bool:
    """0.0.0.0 or ::, which no request names as its host."""
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False


def server_config(args: argparse.Namespace, settings: Settings) -> ServerConfig:
    """The server's configuration from the flags; raises LookalikeError for bad ones."""
    from lookalike.present.web.service import ServerConfig

    token = args.token or token_from_environment()
    if not is_loopback(args.host) and not token:
        raise LookalikeError(
            f"binding {args.host} (not loopback) needs a token: --token T or ${TOKEN_ENV}"
        )
    if args.max_upload_mb <= 0 or args.max_upload_pixels <= 0:
        raise LookalikeError("--max-upload-mb and --max-upload-pixels must be positive")
    roots = None
    if args.allow_root is not None:
        roots = tuple(os.path.abspath(os.path.expanduser(r)) for r in args.allow_root)
        missing = [r for r in roots if not os.path.isdir(r)]
        if missing:
            raise LookalikeError(f"--allow-root {missing[0]}: no such folder")
    return ServerConfig(
        index_dir=settings.index,
        token=token,
        max_upload_bytes=int(args.max_upload_mb * 2**20),
        max_upload_pixels=int(args.max_upload_pixels),
        cors_origins=tuple(args.cors_origin),
        search_threads=max(0, args.threads),
        allowed_hosts=(*([] if is_wildcard(args.host) else [args.host]), *args.allowed_host),
        allowed_roots=roots,
    )


def run_serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn

    from lookalike.present.web.app import create_app

    config = server_config(args, settings)
    token = config.token
    app = create_app(config)  # opens the index: a missing one fails here, with a clean error
    sock = bind(args.host, args.port)  # bound here, so the real port is known (--port 0)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    if not getattr(args, "quiet", False):
        print(
            f"lookalike: serving {settings.index} at http://{shown}:{port}/"
            + (" (token required)" if token else ""),
            file=sys.stderr,
            flush=True,
        )
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False))
    server.run(sockets=[sock])
    return 0


def bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    # Accepted connections inherit it: without, a kept-alive connection's response waited
    # for the client's delayed ACK (Nagle), 40 ms added to every search after the first.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise LookalikeError(f"cannot listen on {host}:{port}: {exc.strerror}") from exc
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock
