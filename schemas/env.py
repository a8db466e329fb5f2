"""Typed readers for ``INFERQ_*`` settings: fail fast, naming the variable and the value."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit


class SettingError(ValueError):
    """A setting has a value that cannot be used."""


def env_str(env: Mapping[str, str], name: str, default: str) -> str:
    return env.get(name, default)


def env_opt(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name, "").strip()
    return value or None


def env_http_url(env: Mapping[str, str], name: str) -> str:
    """An http(s) URL with a host, or "" when unset."""
    raw = (env.get(name) or "").strip()
    if not raw:
        return ""
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise SettingError(f"{name}={raw!r} is not an http(s) URL with a host")
    return raw


def env_names(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """A comma-separated list, each item stripped, empty items dropped; () when unset."""
    return tuple(item.strip() for item in env.get(name, "").split(",") if item.strip())


def env_int(env: Mapping[str, str], name: str, default: int, *, minimum: int = 0) -> int:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise SettingError(f"{name}={raw!r} is not an integer") from None
    if value < minimum:
        raise SettingError(f"{name}={value} must be at least {minimum}")
    return value


def env_float(env: Mapping[str, str], name: str, default: float, *, minimum: float = 0.0) -> float:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise SettingError(f"{name}={raw!r} is not a number") from None
    if value < minimum:
        raise SettingError(f"{name}={value} must be at least {minimum}")
    return value


def env_choice(env: Mapping[str, str], name: str, default: str, choices: tuple[str, ...]) -> str:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value not in choices:
        raise SettingError(f"{name}={raw!r} is not one of {', '.join(choices)}")
    return value


def env_bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    low = raw.strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    raise SettingError(f"{name}={raw!r} is not a boolean (use 1 or 0)")
