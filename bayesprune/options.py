"""Options a criterion or prior declares once, in its constructor's signature.

``--criterion-option NAME=VALUE`` and ``--prior-option NAME=VALUE`` set any keyword parameter of
the chosen class's ``__init__`` that has a plain default (a number, a bool or a string); the
default's type converts the value, and an unknown name or a bad value fails before any work with
one line that lists what the class accepts. The options are recorded in ``config.json``
(``criterion_options``, ``prior_options``), so a run repeats exactly. Adding a criterion or prior
with options is therefore its file plus one registry line: nothing else declares its options.
"""
from __future__ import annotations

import inspect
import math

from .errors import ConfigError

PLAIN = (bool, int, float, str)
KIND_NAMES = {int: "an integer", float: "a number", str: "text"}


def declared_options(cls, reserved: tuple[str, ...] = ()) -> dict[str, object]:
    """``{name: default}`` of ``cls``'s settable options (plain defaults, not in ``reserved``)."""
    out = {}
    for name, parameter in inspect.signature(cls).parameters.items():
        default = parameter.default
        if name in reserved or parameter.kind not in (parameter.POSITIONAL_OR_KEYWORD, parameter.KEYWORD_ONLY):
            continue
        if default is not inspect.Parameter.empty and isinstance(default, PLAIN):
            out[name] = default
    return out


def bind_options(cls, options: dict, flag: str, reserved: tuple[str, ...] = ()) -> dict:
    """``options`` (values may be strings from the command line) converted to the types of ``cls``'s
    declared defaults; raises :class:`ConfigError` naming the flag for anything else."""
    declared = declared_options(cls, reserved)
    accepted = ", ".join(f"{k}={v}" for k, v in declared.items()) or "none"
    bound = {}
    for name, value in options.items():
        if name not in declared:
            raise ConfigError(f"{flag} {name}: {cls.name} has no such option; it accepts {accepted}")
        bound[name] = _convert(value, type(declared[name]), f"{flag} {name}")
    return bound


def parse_assignments(items: list[str] | None, flag: str) -> dict[str, str]:
    """``["a=1", "b=x"]`` from repeated command-line flags -> ``{"a": "1", "b": "x"}``."""
    out = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ConfigError(f"{flag} takes NAME=VALUE, got {item!r}")
        out[name.strip().replace("-", "_")] = value.strip()
    return out


def _convert(value, kind: type, what: str):
    if isinstance(value, kind) and not (kind is int and isinstance(value, bool)):
        converted = value
    elif kind is bool:
        text = str(value).lower()
        if text not in ("true", "false", "1", "0", "yes", "no"):
            raise ConfigError(f"{what} must be true or false, got {value!r}")
        converted = text in ("true", "1", "yes")
    else:
        try:
            converted = kind(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{what} must be {KIND_NAMES.get(kind, kind.__name__)}, got {value!r}") from None
    if isinstance(converted, float) and not math.isfinite(converted):
        raise ConfigError(f"{what} must be a finite number, got {value!r}")
    return converted
