"""The ``triplit-sync`` command.

    triplit-sync dev [--schema FILE] [--port 6543] [--storage memory|sqlite] [--db-path FILE]
                     [--claims-path PATH] [--external-key FILE]

starts the pinned real Triplit server on 127.0.0.1 in the foreground and prints its URL and
ready-to-use tokens, as ``triplit dev`` does. Ctrl-C stops it. ``--external-key`` (a public key
PEM or a JWK file: the server's ``externalJwtSecret``) and ``--claims-path`` (its ``claimsPath``)
let it accept the tokens of an identity provider (Auth0, Clerk, Supabase...).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from typing import List, Optional, TextIO

from ._util.version import __version__
from .schema import DEMO_SCHEMA


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="triplit-sync", description="triplit_sync command line tools")
    parser.add_argument("--version", action="version", version=f"triplit_sync {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    dev = sub.add_parser("dev", help="run a local Triplit server for development")
    dev.add_argument("--schema", metavar="FILE",
                     help="schema in the server's JSON format (default: a small demo schema)")
    dev.add_argument("--schemaless", action="store_true", help="start without any schema")
    dev.add_argument("--port", type=int, default=6543, help="port on 127.0.0.1 (0: any free port; default 6543)")
    dev.add_argument("--storage", choices=("memory", "sqlite"), default="memory")
    dev.add_argument("--db-path", metavar="FILE", help="database file for --storage sqlite")
    dev.add_argument("--secret", help="JWT secret (default: the development secret of `triplit dev`)")
    dev.add_argument("--user", default="dev-user", help="sub claim of the printed user token")
    dev.add_argument("--claims-path", metavar="PATH",
                     help="where external tokens keep their Triplit claims, dotted (e.g. an Auth0 namespace)")
    dev.add_argument("--external-key", metavar="FILE",
                     help="public key (PEM, RSA or EC) or JWK that verifies external tokens, e.g. your "
                          "identity provider's signing key")
    dev.add_argument("--verbose", action="store_true", help="show the server's own log")
    return parser


def _dev(args: argparse.Namespace, out: TextIO) -> int:
    from .testing import TestServerError, TriplitTestServer

    if args.schemaless and args.schema:
        out.write("triplit-sync dev: --schema and --schemaless exclude each other\n")
        return 2
    schema = None if args.schemaless else (args.schema or DEMO_SCHEMA)
    if args.db_path and args.storage != "sqlite":
        out.write("triplit-sync dev: --db-path needs --storage sqlite\n")
        return 2
    external_key = None
    if args.external_key:
        try:
            external_key = Path(args.external_key).read_text()
        except OSError as e:
            out.write(f"triplit-sync dev: cannot read --external-key: {e}\n")
            return 2

    def progress(line: str) -> None:
        # The first run installs the server's Node packages (about a minute): say so as it goes.
        out.write(line + "\n")
        out.flush()

    try:
        server = TriplitTestServer(schema, storage=args.storage, secret=args.secret, port=args.port,
                                   db_path=args.db_path, verbose=args.verbose, claims_path=args.claims_path,
                                   external_key=external_key, progress=progress)
        server.start()
    except (TestServerError, ValueError) as e:
        out.write(f"triplit-sync dev: {e}\n")
        return 1
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        out.write(
            f"Triplit server running at {server.url}\n"
            f"  schema:  {_schema_line(schema)}\n"
            f"  storage: {args.storage}{' ' + str(server.db_path) if server.db_path else ''}\n"
            f"  secret:  {server.secret}  (sign tokens with triplit_sync.mint_token(secret, sub=...))\n"
            + (f"  claims path: {args.claims_path}\n" if args.claims_path else "")
            + (f"  external tokens: verified with {args.external_key}\n" if args.external_key else "")
            + "\n"
            f"Service token (admin, bypasses permissions):\n  {server.service_token()}\n"
            f"Anonymous token:\n  {server.anon_token()}\n"
            f"User token (sub={args.user}):\n  {server.user_token(args.user)}\n\n"
            f"Press Ctrl-C to stop.\n"
        )
        out.flush()
        while not stop.is_set() and server.running:
            stop.wait(0.5)
        if not server.running and not stop.is_set():
            out.write("triplit-sync dev: the server exited\n")
            return 1
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.close()
    out.write("stopped\n")
    return 0


def _schema_line(schema: object) -> str:
    if schema is None:
        return "none (schemaless)"
    if str(schema) == DEMO_SCHEMA:
        return f"{DEMO_SCHEMA}  (the demo schema; in Python: triplit_sync.DEMO_SCHEMA)"
    return str(Path(str(schema)).resolve())


def main(argv: Optional[List[str]] = None, out: TextIO = sys.stdout) -> int:
    """Entry point of ``triplit-sync``; returns the exit code."""
    args = _parser().parse_args(argv)
    if args.command == "dev":
        return _dev(args, out)
    _parser().print_help(out)
    return 2
