"""The settings as options: every field of the model, walked once, with the flag, the
environment variables and the help its declaration derives (:func:`settings_fields`),
and the option reference made from them (:func:`options_table`)."""

from __future__ import annotations

import types
from dataclasses import dataclass
from functools import cache
from typing import Any, Literal, Union, get_args, get_origin

import annotated_types
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from ._meta import GROUPS, SIZES, Opt
from ._model import Settings

_UNITS = (("TiB", 1024**4), ("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024), ("B", 1))


def _members(annotation: Any) -> tuple[Any, ...]:
    """The types of a union (``X | None``), or the annotation alone."""
    if get_origin(annotation) in (Union, types.UnionType):
        return get_args(annotation)
    return (annotation,)


def format_default(name: str, value: Any) -> str:
    """A default as the help and the reference show it: sizes in binary units, lists
    space-separated, nothing for ``None`` and empty collections."""
    if value is None or value in ((), {}, []):
        return ""
    if isinstance(value, tuple):
        return " ".join(str(v) for v in value)
    if name in SIZES and isinstance(value, int):
        return next(f"{value // size}{unit}" for unit, size in _UNITS if value % size == 0)
    return str(value)


def _number(bound: object) -> float:
    """A field's bound as the command line shows it: ``0``, not ``0.0``."""
    value = float(bound)  # type: ignore[arg-type]
    return int(value) if value.is_integer() else value


@dataclass(frozen=True)
class SettingField:
    """One settings field: its config key (``cluster.address``) and its declaration."""

    path: str
    info: FieldInfo
    opt: Opt | None

    @property
    def name(self) -> str:
        return self.path.rpartition(".")[2]

    @property
    def nested(self) -> str | None:
        """``cluster`` or ``stac`` for their fields, ``None`` at the top level."""
        return self.path.partition(".")[0] if "." in self.path else None

    @property
    def flag(self) -> str | None:
        if self.opt is None or self.opt.flag is None:
            return None
        return self.opt.flag or "--" + self.name.replace("_", "-")

    @property
    def param(self) -> str | None:
        """The argument name the flag is passed to :func:`resolve_settings` as."""
        if self.flag is None:
            return None
        assert self.opt is not None
        if self.opt.param:
            return self.opt.param
        return self.flag[2:].replace("-", "_") if self.nested else self.name

    @property
    def env(self) -> tuple[str, ...]:
        """Its environment variables (the last one set wins)."""
        env = None if self.opt is None else self.opt.env
        if env is True:
            stem = self.flag[2:] if self.flag else self.name
            return ("COMPACTOR_" + stem.replace("-", "_").upper(),)
        if isinstance(env, str):
            return (env,)
        return env or ()

    @property
    def default(self) -> Any:
        return self.info.get_default(call_default_factory=True)

    @property
    def shown_default(self) -> str | None:
        """The ``[default: ...]`` of its help, or ``None`` when the help shows none."""
        shown = None if self.opt is None else self.opt.shown_default
        if shown is True:
            return format_default(self.name, self.default)
        return shown or None

    @property
    def description(self) -> str:
        return self.info.description or ""

    @property
    def choices(self) -> tuple[str, ...] | None:
        if self.opt is not None and (self.opt.choices or self.opt.kind):
            return self.opt.choices
        for member in _members(self.info.annotation):
            if get_origin(member) is Literal:
                return tuple(str(v) for v in get_args(member))
        return None

    @property
    def multiple(self) -> bool:
        annotation = self.info.annotation
        return get_origin(annotation) is tuple and get_args(annotation)[-1:] == (...,)

    @property
    def is_flag(self) -> bool:
        return self.info.annotation is bool

    @property
    def bounds(self) -> tuple[float | None, float | None, bool]:
        """The range the command line accepts (low, high, whether high is excluded): the
        :class:`Opt`'s where it says one, else the field's own ``ge``/``le``/``lt`` (sizes
        are text on the command line: their bounds are checked on resolution)."""
        opt = self.opt
        if opt is not None and (opt.low is not None or opt.high is not None):
            return opt.low, opt.high, opt.max_open
        if self.name in SIZES:
            return None, None, False
        low: float | None = None
        high: float | None = None
        open_high = False
        for bound in self.info.metadata:
            if isinstance(bound, annotated_types.Ge):
                low = _number(bound.ge)
            elif isinstance(bound, annotated_types.Le):
                high = _number(bound.le)
            elif isinstance(bound, annotated_types.Lt):
                high, open_high = _number(bound.lt), True
        return low, high, open_high

    @property
    def number(self) -> type[int] | type[float]:
        """The number type of a ranged option."""
        return float if float in _members(self.info.annotation) else int


def _walk(model: type[BaseModel], prefix: str = "") -> list[SettingField]:
    found: list[SettingField] = []
    for name, info in model.model_fields.items():
        annotation = info.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            found += _walk(annotation, f"{prefix}{name}.")
            continue
        opt = next((m for m in info.metadata if isinstance(m, Opt)), None)
        found.append(SettingField(f"{prefix}{name}", info, opt))
    return found


@cache
def settings_fields() -> tuple[SettingField, ...]:
    """Every field of :class:`Settings`, nested ones as ``cluster.*`` and ``stac.*``."""
    return tuple(_walk(Settings))


def options_of(group: str) -> tuple[SettingField, ...]:
    """The command-line options of one group, in the model's order."""
    if group not in GROUPS:
        raise ValueError(f"no option group {group!r} (one of {', '.join(GROUPS)})")
    return tuple(f for f in settings_fields() if f.flag and f.opt and f.opt.group == group)


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _code(texts: list[str]) -> str:
    return ", ".join(f"`{t}`" for t in texts)


def _row(field: SettingField) -> str:
    flags = []
    if field.flag:
        assert field.opt is not None
        metavar = f" {field.opt.metavar}" if field.opt.metavar else ""
        flags = [f + metavar for f in (field.flag, *field.opt.aliases)]
    description = field.description.replace("{regions}", "")
    if field.choices:
        description += " One of: " + ", ".join(field.choices) + "."
    default = field.shown_default or format_default(field.name, field.default)
    cells = (_code(flags), _code(list(field.env)), f"`{field.path}`",
             f"`{default}`" if default else "", description)  # fmt: skip
    return "| " + " | ".join(_cell(c) for c in cells) + " |"


def options_table() -> str:
    """The option reference as a markdown table: flag | environment | config key | default |
    description, one row per setting, grouped as the command line groups them."""
    order = {group: i for i, group in enumerate(GROUPS)}
    rows = sorted(
        settings_fields(),
        key=lambda f: order.get(f.opt.group, len(GROUPS)) if f.opt else len(GROUPS),
    )
    head = "| flag | environment | config key | default | description |"
    return "\n".join([head, "| --- | --- | --- | --- | --- |", *map(_row, rows)]) + "\n"
