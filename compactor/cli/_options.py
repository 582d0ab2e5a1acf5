"""Click options generated from the settings model: each setting's flag, type, help and
default are declared once, on its field (:class:`compactor.settings.Opt`); one decorator
per option group, reused by every command that takes the group."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from ..codecs import parse_quality
from ..pricing import known_regions
from ..settings import SettingField, options_of

F = TypeVar("F", bound=Callable[..., Any])


class QualityType(click.ParamType):  # type: ignore[type-arg]
    """``auto`` or a quality from 1 to 100 (:func:`compactor.codecs.parse_quality`)."""

    name = "quality"

    def convert(self, value: Any, param: Any, ctx: Any) -> int | str:
        try:
            return parse_quality(value)
        except ValueError as err:
            self.fail(str(err), param, ctx)


QUALITY = QualityType()


def _type(field: SettingField) -> Any:
    """The click type of a setting's option (``None``: a plain string)."""
    opt = field.opt
    assert opt is not None
    if opt.kind == "quality":
        return QUALITY
    if opt.kind == "file":
        return click.Path(dir_okay=False)
    if field.choices:
        return click.Choice(field.choices, case_sensitive=opt.case_sensitive)
    low, high, max_open = field.bounds
    if low is None and high is None:
        return None
    if field.number is float:
        return click.FloatRange(low, high, max_open=max_open)
    return click.IntRange(None if low is None else int(low), None if high is None else int(high))


def help_text(field: SettingField) -> str:
    """The option's help: the field's description and the default it shows."""
    text = field.description.replace("{regions}", ": " + ", ".join(known_regions()))
    shown = field.shown_default
    return f"{text}  [default: {shown}]" if shown else text


def option(field: SettingField) -> Callable[[F], F]:
    """The click option of one setting."""
    opt = field.opt
    assert opt is not None
    assert field.flag is not None
    assert field.param is not None
    kwargs: dict[str, Any] = {"help": help_text(field)}
    if field.is_flag:
        kwargs.update(is_flag=True, default=None)
    else:
        kwargs.update(type=_type(field), metavar=opt.metavar, multiple=field.multiple)
    decorator: Callable[[F], F] = click.option(field.flag, *opt.aliases, field.param, **kwargs)
    return decorator


def group_options(*groups: str) -> Callable[[F], F]:
    """A decorator adding the options of these groups, in the order given."""
    fields = [field for group in groups for field in options_of(group)]

    def decorate(func: F) -> F:
        for field in reversed(fields):
            func = option(field)(func)
        return func

    return decorate


#: What only a run takes (its report, leases, STAC write-back).
run_options = group_options("run")
#: Everything that says which scenes and how to compact them (run and plan).
selection_options = group_options(
    "source", "archive", "encoding", "limits", "cost", "cluster", "stac"
)
