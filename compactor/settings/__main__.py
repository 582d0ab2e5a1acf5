"""``python -m compactor.settings``: rewrite docs/options.md from the settings model
(``--check``: exit 1 if it is out of date, writing nothing)."""

from __future__ import annotations

import sys

from ._reference import OPTIONS_DOC, render, write


def main(argv: list[str]) -> int:
    if "--check" in argv:
        old = OPTIONS_DOC.read_text(encoding="utf-8") if OPTIONS_DOC.exists() else None
        if render(old) != old:
            sys.stderr.write(f"{OPTIONS_DOC} is out of date: run python -m compactor.settings\n")
            return 1
        return 0
    if write():
        sys.stderr.write(f"wrote {OPTIONS_DOC}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
