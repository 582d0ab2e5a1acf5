"""How numbers and names are shown: bytes, money, escaped text, short scene names."""

from __future__ import annotations

import html


def human_bytes(n: float | None) -> str:
    if n is None:
        return "–"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} PiB"


def usd(amount: float) -> str:
    """Dollars with cents, or four significant digits below a dollar."""
    if abs(amount) >= 1:
        return f"${amount:,.2f}"
    if amount == 0:
        return "$0.00"
    return f"${amount:.4g}" if abs(amount) >= 1e-4 else f"${amount:.2e}"


def esc(value: object) -> str:
    """Text for HTML and SVG, escaped (``None`` shows as nothing)."""
    return html.escape("" if value is None else str(value))


def short_name(url: str, limit: int = 38) -> str:
    """The last path segment of ``url``, elided in the middle beyond ``limit`` characters."""
    name = url.rstrip("/").rsplit("/", 1)[-1]
    if len(name) <= limit:
        return name
    half = (limit - 1) // 2
    return name[:half] + "…" + name[-(limit - 1 - half) :]
