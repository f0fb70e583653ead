"""The `training-package-mcp` commands: serve (stdio or HTTP), check-config, demo.

Run through server.__main__, which turns the garbage collector off before this module's
imports; a command that keeps running calls _settled once it has started.
"""

import argparse
import gc
import sys
from pathlib import Path

import anyio
import yaml

from server import APP_NAME, __version__
from server.settings import CONFIG_DIR_ENV, ConfigError, Secrets, Settings, load_settings
from tools.errors import UserError

EXIT_CONFIG = 2


def _settled() -> None:
    """Start-up is over: what it built lives as long as the process, so the collector may
    skip it for good (gc.freeze), and collects what comes next as usual."""
    gc.freeze()
    gc.enable()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    command = args.command or "serve"
    try:
        settings = load_settings(getattr(args, "config_dir", None))
    except ConfigError as exc:
        print(f"{APP_NAME} {command}: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    if command == "check-config":
        return _check_config(settings)
    if command == "hash-token":
        return _hash_token(args.subject, generate=args.generate)
    if command == "demo":
        from server.demo import run_demo

        _settled()
        return anyio.run(run_demo, settings)
    return _serve(settings, http=getattr(args, "http", False), host=args.host, port=args.port)


def _parser() -> argparse.ArgumentParser:
    config_dir = argparse.ArgumentParser(add_help=False)
    config_dir.add_argument(
        "--config-dir",
        type=Path,
        default=argparse.SUPPRESS,
        help=f"a directory of YAML files overlaying the shipped configs key by key "
        f"(default: ${CONFIG_DIR_ENV} if set)",
    )
    parser = argparse.ArgumentParser(
        prog=APP_NAME,
        description="An MCP server that builds fine-tuning training packages in conversation.",
        parents=[config_dir],
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.set_defaults(command=None, host=None, port=None)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    serve = commands.add_parser(
        "serve",
        parents=[config_dir],
        help="run the MCP server (stdio unless --http; the default command)",
        description="Run the MCP server over stdio (for Claude Desktop, Claude Code, Cursor) "
        "or, with --http, over streamable HTTP.",
    )
    serve.add_argument("--http", action="store_true", help="serve streamable HTTP, not stdio")
    serve.add_argument("--host", help="HTTP bind address (default: transport.http.host)")
    serve.add_argument("--port", type=int, help="HTTP port (default: transport.http.port)")
    commands.add_parser(
        "check-config",
        parents=[config_dir],
        help="validate every config file and print the effective settings",
        description="Load and validate every config file (shipped, overlay, environment) and "
        "print the effective settings. Exits non-zero naming the file, key and problem.",
    )
    commands.add_parser(
        "demo",
        parents=[config_dir],
        help="walk the wizard with an in-process MCP client, offline",
        description="Start the server in-process, connect an MCP client and print every call "
        "and its result. Uses a temporary drafts database; needs no network.",
    )
    hash_token = commands.add_parser(
        "hash-token",
        help="make a static-token entry for auth (reads the token from stdin)",
        description="Print the '<subject>:<sha256>' entry that lets a bearer token in as "
        "SUBJECT, for TRAINING_PACKAGE_MCP_TOKENS or auth.static_tokens_file. The token is read "
        "from stdin, or made up with --generate (then printed once on stderr).",
    )
    hash_token.add_argument("subject", help="who the token stands for; owns its drafts")
    hash_token.add_argument("--generate", action="store_true", help="make a new random token")
    return parser


def _hash_token(subject: str, *, generate: bool) -> int:
    import secrets

    from server.auth import token_digest

    token = secrets.token_urlsafe(32) if generate else sys.stdin.readline().strip()
    if not token:
        print(f"{APP_NAME} hash-token: no token on stdin (or use --generate)", file=sys.stderr)
        return EXIT_CONFIG
    if generate:
        print(f"token (give it to {subject}; it is not stored): {token}", file=sys.stderr)
    print(f"{subject}:{token_digest(token)}")
    return 0


def _check_config(settings: Settings) -> int:
    effective = settings.model_dump(mode="json")
    secrets = Secrets.from_env().model_dump()
    effective["secrets (from the environment)"] = {
        name: "set" if value else "not set" for name, value in secrets.items()
    }
    print(yaml.safe_dump(effective, sort_keys=False, width=100), end="")
    print(
        f"# configuration is valid ({', '.join(settings.sources)}); drafts database: "
        f"{settings.server.storage.sqlite.resolved_path()}",
        file=sys.stderr,
    )
    return 0


def _serve(settings: Settings, *, http: bool, host: str | None, port: int | None) -> int:
    from server.app import build_server
    from server.logging import configure_logging, get_logger

    http_config = settings.server.transport.http
    use_http = http or settings.server.transport.default == "http"
    host = host or http_config.host
    port = port or http_config.port
    secrets = Secrets.from_env()
    auth = None
    if use_http:  # server.http's auth imports pyjwt and cryptography: stdio does without
        from server.http import http_auth, is_loopback

        try:
            auth = http_auth(settings, secrets, f"http://{host}:{port}{http_config.path}")
        except UserError as exc:
            print(f"{APP_NAME}: {exc}", file=sys.stderr)
            return EXIT_CONFIG
        if auth is None and not is_loopback(host):
            print(
                f"{APP_NAME}: refusing to serve on {host}: no authentication is configured, so "
                "HTTP binds only to a loopback address (127.0.0.1, ::1 or localhost). Configure "
                "tokens (see auth in server.yaml) to serve other hosts.",
                file=sys.stderr,
            )
            return EXIT_CONFIG

    configure_logging(settings.server.logging.level, secrets.values())
    log = get_logger(__name__)
    try:
        mcp = build_server(settings, secrets, auth=auth, transport="http" if use_http else "stdio")
    except UserError as exc:
        print(f"{APP_NAME}: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    _settled()
    try:
        if not use_http:
            mcp.run()
            return 0
        import uvicorn

        from server.http import http_app

        app = http_app(mcp, settings, host)
        log.info(
            "http.listening",
            url=f"http://{host}:{port}{http_config.path}",
            auth="bearer tokens" if auth else "none (loopback only)",
        )
        uvicorn.run(app, host=host, port=port, log_config=None, access_log=False)
        return 0
    except KeyboardInterrupt:
        return 0
    except Exception as exc:
        if (cause := _user_error(exc)) is None:
            raise
        print(f"{APP_NAME}: {cause}", file=sys.stderr)
        return EXIT_CONFIG


def _user_error(exc: BaseException) -> UserError | None:
    """The UserError behind a start-up failure, through task-group wrappers and causes."""
    if isinstance(exc, UserError):
        return exc
    if isinstance(exc, BaseExceptionGroup):
        for inner in exc.exceptions:
            if (found := _user_error(inner)) is not None:
                return found
    cause = exc.__cause__ or exc.__context__
    return _user_error(cause) if cause is not None else None
