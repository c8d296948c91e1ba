"""Config as data, one way: every file-backed config is a pydantic model (``Field(description=...)``
documents each field), read with :func:`load_yaml_mapping` and validated with :func:`parse_model`,
so a bad value is one line ``FILE: field a[0].b: <problem> (got <value>)``."""
from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, TypeVar

import yaml
from pydantic import BaseModel, Field, StrictInt, ValidationError

from clover_rl.errors import ConfigError

# The field types the config models share, so each constraint (and pydantic's message for it,
# e.g. "Input should be greater than or equal to 1") is written once; a Field(default,
# description=...) on the attribute adds to them.
#: How many of something: an int (not a bool or 2.0), at least 1.
Count = Annotated[StrictInt, Field(ge=1)]
#: An int >= 0 (seeds, periods where 0 disables, verbosity).
NonNegInt = Annotated[StrictInt, Field(ge=0)]
#: A finite number (YAML's .inf/.nan refused).
Finite = Annotated[float, Field(allow_inf_nan=False)]
#: A finite number > 0.
PositiveFinite = Annotated[float, Field(gt=0, allow_inf_nan=False)]
#: A finite number >= 0.
NonNegFinite = Annotated[float, Field(ge=0, allow_inf_nan=False)]


def load_yaml_mapping(path: Path, *, empty_ok: bool = False) -> dict:
    """The top-level mapping of a YAML file (``{}`` for an empty file when ``empty_ok``), or a
    ConfigError naming the file."""
    return parse_yaml_mapping(path.read_text(), str(path), empty_ok=empty_ok)


def parse_yaml_mapping(text: str, where: str, *, empty_ok: bool = False) -> dict:
    """The same for YAML ``text`` that is not a file of its own (e.g. a Kubernetes config map's
    key); ``where`` names it in the ConfigError."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{where}: not valid YAML ({str(e).splitlines()[0]})") from None
    if data is None and empty_ok:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{where}: expected a mapping at the top level")
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


M = TypeVar("M", bound=BaseModel)


def parse_model(model: type[M], data: object, where: str) -> M:
    """``model`` validated from the mapping ``data``; any problem is a one-line ConfigError
    ``{where}: field F: <problem> (got V)`` (``where``: the file, or the flag/section it came from)."""
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where}: expected a mapping (got {data!r})"[:200])
    try:
        return model.model_validate(dict(data))
    except ValidationError as e:
        raise ConfigError(f"{where}: {first_validation_error(e)}") from None
