"""`kern-bot` command line entry point."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    """Entry point; the serve/socket/dev commands arrive with the kern-bot issue."""
    args = sys.argv[1:] if argv is None else argv
    print("kern-bot: no commands yet (serve, socket and dev are being built)", file=sys.stderr)
    return 2 if args else 0


if __name__ == "__main__":
    raise SystemExit(main())
