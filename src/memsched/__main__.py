"""``python -m memsched`` and the ``memsched`` console script.

The command line is imported inside :func:`run`, so that a Ctrl-C while it loads (numpy, rich, typer: about
half a second) ends with "memsched: interrupted" and status 130, not a traceback from the import machinery.
"""

import sys


def run() -> int:
    """Load the command line and run it."""
    try:
        from memsched.cli import main
    except KeyboardInterrupt:
        print("memsched: interrupted", file=sys.stderr)
        return 130
    return main()


if __name__ == "__main__":
    sys.exit(run())
