"""Reading user YAML and turning pydantic validation errors into one-line messages."""
from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError

from clover_rl.errors import ConfigError


def load_yaml_mapping(path: Path, *, empty_ok: bool = False) -> dict:
    """The top-level mapping of a YAML file (``{}`` for an empty file when ``empty_ok``), or a
    ConfigError naming the file."""
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    if data is None and empty_ok:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def first_validation_error(err: ValidationError) -> str:
    """``field a.b: <message> (got <value>)`` for the first problem pydantic found."""
    e = err.errors()[0]
    ours = (e.get("ctx") or {}).get("error")
    if not e["loc"] and isinstance(ours, ConfigError):
        return str(ours)  # a model-level check that already names its field
    loc = "".join(f"[{x}]" if isinstance(x, int) else f".{x}" for x in e["loc"]).lstrip(".") or "(top level)"
    if e["type"] == "extra_forbidden":
        return f"field {loc}: unknown field"
    val = e.get("input")
    shown = f" (got {val!r})"
    if e["type"] == "missing" or len(shown) > 80 or repr(val) in str(ours or ""):
        shown = ""
    return f"field {loc}: {ours if isinstance(ours, ConfigError) else e['msg']}{shown}"
