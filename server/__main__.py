"""`python -m server` and the `training-package-mcp` console script.

Start-up builds about a million long-lived objects (the SDK's and our pydantic models), and the
garbage collector would walk them all, several times, before the first tools/list: a client
spawns the server for every chat and waits for that. So the collector is off from the first
import until the server is built (server.cli._settled freezes what start-up built out of every
later collection and turns it back on).
"""

import gc
import sys


def main(argv: list[str] | None = None) -> int:
    gc.disable()
    try:
        from server.cli import main as run_command

        return run_command(argv)
    finally:
        gc.enable()


if __name__ == "__main__":
    sys.exit(main())
