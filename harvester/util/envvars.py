"""Environment variables over a pydantic-settings class (``PREFIX<SECTION>__<KEY>``): the names it
knows, and which variable it could not read."""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Iterable, Mapping

from pydantic import BaseModel


def known_names(settings: type[BaseModel], prefix: str, extra: Iterable[str]) -> set[str]:
    names = {name.upper() for name in extra}
    for section, field in settings.model_fields.items():
        names.add(f"{prefix}{section.upper()}")
        model = field.annotation
        if isinstance(model, type) and issubclass(model, BaseModel):
            names.update(f"{prefix}{section.upper()}__{key.upper()}" for key in model.model_fields)
    return names


def unknown_variable(
    settings: type[BaseModel],
    prefix: str,
    extra: Iterable[str],
    environ: Mapping[str, str] | None = None,
) -> tuple[str, str | None] | None:
    """The first variable with the prefix that names no setting, and the closest name that does."""
    known = known_names(settings, prefix, extra)
    for name in sorted(os.environ if environ is None else environ):
        if name.upper().startswith(prefix) and name.upper() not in known:
            close = difflib.get_close_matches(name.upper(), sorted(known), n=1)
            return name, close[0] if close else None
    return None


def _collection(settings: type[BaseModel], prefix: str, variable: str) -> bool:
    section, _, key = variable.upper().removeprefix(prefix).partition("__")
    field = settings.model_fields.get(section.lower())
    model = field.annotation if field is not None else None
    if not (isinstance(model, type) and issubclass(model, BaseModel)):
        return False
    inner = model.model_fields.get(key.lower())
    origin = getattr(inner.annotation, "__origin__", None) if inner is not None else None
    return origin in (list, dict)


def unparsable_collection(settings: type[BaseModel], prefix: str) -> str | None:
    """A variable for a list or mapping setting whose value is not JSON."""
    for name, value in sorted(os.environ.items()):
        if not name.upper().startswith(prefix) or "__" not in name:
            continue
        if not _collection(settings, prefix, name):
            continue
        try:
            json.loads(value)
        except ValueError:
            return name
    return None
