"""How numbers and names are shown: bytes, money, escaped text, short scene names."""

from __future__ import annotations

import html
import math
from decimal import Decimal


def human_bytes(n: float | None) -> str:
    if n is None:
        return "–"
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(value) < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} PiB"


def usd(amount: float, *, short: bool = False) -> str:
    """Money as money, never in scientific notation: ``$1,234.56``, ``$0.42``, ``-$0.03``;
    amounts below a cent keep two significant digits (``$0.000010``) so a small saving is
    not shown as nothing. ``short`` (summaries): below a cent is ``< $0.01``."""
    if math.isnan(amount):
        return "–"
    sign = "-" if amount < 0 else ""
    value = abs(amount)
    if math.isinf(value):
        return f"{sign}$∞"
    if value == 0:
        return "$0.00"
    if value >= 0.01:
        return f"{sign}${value:,.2f}"
    if short:
        return "> -$0.01" if sign else "< $0.01"
    if value < 1e-12:
        return f"{'> -' if sign else '< '}$0.000000000001"
    # Two significant digits, written out: "#" keeps the trailing zero of 1.0e-05.
    digits = Decimal(f"{value:#.2g}")
    if digits >= Decimal("0.01"):  # 0.00999... rounds up to a cent
        return f"{sign}$0.01"
    return f"{sign}${format(digits, 'f')}"


def usd_price(price: float) -> str:
    """A unit price as listed (``$0.023``, ``$0.0036``, ``$0.00099``, ``$0.05``): every digit
    it has, at least two decimals, never scientific notation."""
    text = format(Decimal(repr(float(price))), "f")
    whole, _, decimals = text.partition(".")
    return f"${int(whole):,}.{decimals.rstrip('0').ljust(2, '0')}"


def gb(value: float) -> str:
    """GB with three decimals, or three significant digits below 0.001 (the overhead of a
    few small objects), never in scientific notation."""
    if value == 0 or abs(value) >= 0.001:
        return f"{value:,.3f}"
    return format(Decimal(f"{value:#.3g}"), "f")


def months(value: float | None) -> str:
    """A payback time: ``never`` (no saving), ``< 0.1 months``, ``2.3 months``, ``31
    months``, ``over 100 years``."""
    if value is None or math.isnan(value):
        return "never"
    if value < 0.1:
        return "< 0.1 months"
    if value < 10:
        return f"{value:.1f} months"
    if value > 1200:
        return "over 100 years"
    return f"{value:,.0f} months"


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
