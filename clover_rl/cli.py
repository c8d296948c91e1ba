"""`clover-rl` entry point. Thin: each command group lives in ``clover_rl/commands/`` and calls
library code; this module only assembles them and turns user errors into one-line messages."""
from __future__ import annotations

import sys

import typer

from clover_rl.errors import CloverError

app = typer.Typer(
    name="clover-rl",
    help="Carbon-aware control of ML inference services on NVIDIA MIG GPUs.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _register() -> None:
    from clover_rl.commands import register_all

    register_all(app)


def main(argv: list[str] | None = None) -> int:
    _register()
    try:
        app(args=argv, standalone_mode=False)
    except CloverError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (typer.Exit, SystemExit) as e:
        code = getattr(e, "exit_code", getattr(e, "code", 0))
        return int(code or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # click usage errors and friends (typer may vendor its own click)
        if hasattr(e, "format_message") and hasattr(e, "exit_code"):
            param = getattr(e, "param", None)
            hint = getattr(param, "opts", None) or []
            where = f" (option {hint[0]})" if hint and hint[0] not in e.format_message() else ""
            print(f"error: {e.format_message()}{where}", file=sys.stderr)
            return int(e.exit_code)
        if type(e).__name__ == "Abort":
            print("aborted", file=sys.stderr)
            return 1
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
