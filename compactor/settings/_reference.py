"""``docs/options.md``, the option reference, written from the model."""

from __future__ import annotations

from pathlib import Path

from ._options import options_table

#: The reference, relative to the repository's root (where ``python -m compactor.settings``
#: is run).
OPTIONS_DOC = Path("docs") / "options.md"
START, END = "<!-- options:start -->", "<!-- options:end -->"

_NEW = f"""# Options

Every setting of a run: its command-line flag, environment variable, config-file key,
default and meaning. Generated from the settings model by `python -m compactor.settings`
(do not edit between the markers: `tests/settings/test_config.py` fails when this drifts).

{START}
{END}
"""


def render(text: str | None = None) -> str:
    """``text`` (the reference as it is; a new one if ``None``) with the table between
    its markers replaced by the model's."""
    text = _NEW if text is None else text
    head, start, rest = text.partition(START)
    _, end, tail = rest.partition(END)
    if not start or not end:
        raise ValueError(f"{OPTIONS_DOC} lacks the lines {START} and {END}")
    return f"{head}{START}\n{options_table()}{END}{tail}"


def write(path: Path = OPTIONS_DOC) -> bool:
    """Write the reference; whether it changed."""
    old = path.read_text(encoding="utf-8") if path.exists() else None
    new = render(old)
    if new == old:
        return False
    path.write_text(new, encoding="utf-8")
    return True
