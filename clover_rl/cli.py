"""`clover-rl` entry point. Thin: each command group lives in ``clover_rl/commands/`` and calls
library code; this module only assembles them and turns user errors into one-line messages."""
from __future__ import annotations

import sys
import warnings
from typing import Any

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
    _conventional_help()


def _conventional_help() -> None:
    """Help in the usual POSIX style: on/off flags as flags (``--dry-run``, not ``--dry-run
    <bool>`` as if they took a value) and required arguments as ``SOURCE`` (typer 0.2x writes
    ``{SOURCE}``, ``{SCENARIO}...`` for a list), and a docstring's later paragraphs re-wrapped to
    the terminal (typer 0.29 keeps their source line breaks, so they print ragged). Patches
    typer's help formatting once; a typer without these hooks is left as is."""
    from typer import rich_utils
    from typer.core import TyperArgument, TyperOption

    shown = getattr(TyperOption, "display_type_rich", None)
    if shown is not None and not getattr(shown, "_clover", False):
        def display_type_rich(self: TyperOption, ctx: object) -> str | None:
            return None if getattr(self, "is_flag", False) else shown(self, ctx)

        display_type_rich._clover = True  # type: ignore[attr-defined]
        TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign]
    usage = getattr(TyperArgument, "_usage_display_name", None)
    if usage is not None and not getattr(usage, "_clover", False):
        def _usage_display_name(self: TyperArgument) -> str:
            name = usage(self)
            stem, dots = (name[:-3], "...") if name.endswith("...") else (name, "")
            return stem[1:-1].upper() + dots if stem.startswith("{") and stem.endswith("}") else name

        _usage_display_name._clover = True  # type: ignore[attr-defined]
        TyperArgument._usage_display_name = _usage_display_name  # type: ignore[method-assign]
    linebreaks = getattr(rich_utils, "_fix_linebreaks", None)
    if linebreaks is not None and not getattr(linebreaks, "_clover", False):
        def _fix_linebreaks(paragraphs: list[str], markup_mode: str) -> str:
            if markup_mode == getattr(rich_utils, "MARKUP_MODE_MARKDOWN", "markdown"):
                return linebreaks(paragraphs, markup_mode)
            return "\n\n".join(p if p.startswith("\b") else " ".join(p.split("\n"))
                                 for p in paragraphs)

        _fix_linebreaks._clover = True  # type: ignore[attr-defined]
        rich_utils._fix_linebreaks = _fix_linebreaks  # type: ignore[assignment]


def _one_line_warning(message: Any, category: type[Warning], filename: str, lineno: int,
                      file: Any = None, line: str | None = None) -> None:
    """The project's warnings as ``warning: <message>`` (no source line); others as Python shows them."""
    if category.__module__.startswith("clover_rl"):
        print(f"warning: {message}", file=sys.stderr)
    else:
        _show_python_warning(message, category, filename, lineno, file, line)


_show_python_warning = warnings.showwarning


def main(argv: list[str] | None = None) -> int:
    _register()
    if not (sys.argv[1:] if argv is None else argv):
        argv = ["--help"]  # no arguments: the help, exit 0 (not click's empty usage error)
    warnings.showwarning = _one_line_warning
    try:
        app(args=argv, standalone_mode=False, prog_name="clover-rl")
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
