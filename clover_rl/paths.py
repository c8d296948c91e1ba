"""Where shipped data lives, whether running from a checkout or an installed wheel.

Never relative to the working directory: a checkout keeps ``configs/`` and ``checkpoints/``
next to the package; a wheel carries copies under ``clover_rl/_shipped/``.
"""
from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
_REPO_DIR = PACKAGE_DIR.parent
_SHIPPED = PACKAGE_DIR / "_shipped"


def _first_existing(*candidates: Path) -> Path:
    for c in candidates:
        if c.is_dir():
            return c
    return candidates[0]


def configs_dir() -> Path:
    env = os.environ.get("CLOVER_RL_CONFIGS")
    if env:
        return Path(env)
    return _first_existing(_REPO_DIR / "configs", _SHIPPED / "configs")


def checkpoints_dir() -> Path:
    return _first_existing(_REPO_DIR / "checkpoints", _SHIPPED / "checkpoints")


def carbon_data_dir() -> Path:
    return PACKAGE_DIR / "carbon" / "data"


def profiles_dir() -> Path:
    return PACKAGE_DIR / "serving" / "profiles"


def resolve_named(kind: str, name_or_path: str, suffix: str = ".yaml") -> Path:
    """A shipped name (``efficientnet``) or a file path; shipped names win only if no such file."""
    p = Path(name_or_path).expanduser()
    if p.exists():
        return p
    shipped = configs_dir() / kind / f"{name_or_path}{suffix}"
    if shipped.exists():
        return shipped
    return p


def writable_dir(path: str | Path, flag: str) -> Path:
    """``path`` created if needed and writable, checked before a long run writes there.

    Raises :class:`~clover_rl.errors.ConfigError` naming the flag, the folder and the reason.
    """
    from clover_rl.errors import ConfigError

    p = Path(path).expanduser()
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ConfigError(f"{flag} {p}: cannot create folder ({e.strerror or e})") from None
    if not os.access(p, os.W_OK):
        raise ConfigError(f"{flag} {p}: folder is not writable")
    return p
