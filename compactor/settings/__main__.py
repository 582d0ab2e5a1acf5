"""``python -m compactor.settings [--check] [PATH]``: rewrite the option reference
(``docs/options.md`` of the repository it is run in, or PATH) from the settings model;
``--check``: exit 1 if it is out of date, writing nothing."""

from __future__ import annotations

import sys
from pathlib import Path

from ._reference import OPTIONS_DOC, render, write


def main(argv: list[str]) -> int:
    paths = [Path(a) for a in argv if a != "--check"]
    path = paths[0] if paths else OPTIONS_DOC
    if not path.parent.is_dir():
        sys.stderr.write(f"{path.parent}/ does not exist: run from the repository's root\n")
        return 2
    if "--check" in argv:
        old = path.read_text(encoding="utf-8") if path.exists() else None
        if render(old) != old:
            sys.stderr.write(f"{path} is out of date: run python -m compactor.settings\n")
            return 1
        return 0
    if write(path):
        sys.stderr.write(f"wrote {path}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
