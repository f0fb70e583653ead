"""The `training-package-mcp` command: serve (stdio or HTTP), check-config, demo."""

import argparse
import ipaddress
import sys
from pathlib import Path

import anyio
import yaml

from server import APP_NAME, __version__
from server.settings import CONFIG_DIR_ENV, ConfigError, Secrets, Settings, load_settings

EXIT_CONFIG = 2


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
    if command == "demo":
        from server.demo import run_demo

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
    return parser


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
    http_config = settings.server.transport.http
    use_http = http or settings.server.transport.default == "http"
    host = host or http_config.host
    port = port or http_config.port
    if use_http and not _is_loopback(host):
        print(
            f"{APP_NAME}: refusing to serve on {host}: no authentication is configured, so "
            "HTTP binds only to a loopback address (127.0.0.1, ::1 or localhost).",
            file=sys.stderr,
        )
        return EXIT_CONFIG

    from server.app import build_server
    from server.logging import configure_logging, get_logger

    secrets = Secrets.from_env()
    configure_logging(settings.server.logging.level, secrets.values())
    mcp = build_server(settings, secrets)
    try:
        if not use_http:
            mcp.run()
            return 0
        import uvicorn

        app = mcp.streamable_http_app(streamable_http_path=http_config.path, host=host)
        get_logger(__name__).info("http.listening", url=f"http://{host}:{port}{http_config.path}")
        uvicorn.run(app, host=host, port=port, log_config=None, access_log=False)
        return 0
    except KeyboardInterrupt:
        return 0


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


if __name__ == "__main__":
    sys.exit(main())
