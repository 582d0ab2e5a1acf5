"""What :func:`~compactor.notebook.compare` measured: the table, its size-versus-SSIM
chart, the per-profile summary and the notebook's HTML rendering.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from ..display import esc, human_bytes, short_name
from ..errors import ConfigError
from ..report import X_AXES, is_missing, scatter_chart

#: Columns of :meth:`Comparison.summary`, one row per profile.
SUMMARY_COLUMNS = [
    "profile", "scenes", "errors", "bytes", "est_bytes", "est_saving", "mean_ratio",
    "ssim_min", "passing", "encode_s",
]  # fmt: skip
# --- the comparison, its chart and summary ---------------------------------------------


@dataclass
class Comparison:
    """What :func:`compare` measured: :attr:`df` has one row per scene and profile."""

    df: Any
    #: The SSIM bar drawn on the chart and counted in the summary (``None``: no bar).
    min_ssim: float | None = 0.95
    #: Profiles in the order asked.
    profiles: tuple[str, ...] = ()

    def _profiles(self) -> list[str]:
        seen = list(self.profiles)
        seen += [p for p in dict.fromkeys(self.df["profile"]) if p not in seen]
        return seen

    def summary(self) -> Any:
        """One row per profile: scenes it encoded, errors, total sample COG bytes, total
        estimated bytes of the scenes, the estimated saving against the originals as
        stored, the mean ratio, the lowest SSIM, how many scenes pass the SSIM bar, and
        the total encoding time."""

        df = self.df
        rows = []
        for name in self._profiles():
            group = df[df["profile"] == name]
            ok = group[group["error"].isna()]
            with_in = ok[ok["bytes_in"].notna() & ok["est_bytes"].notna()]
            total_in = int(with_in["bytes_in"].sum()) if len(with_in) else 0
            saving = 1 - int(with_in["est_bytes"].sum()) / total_in if total_in else math.nan
            ssims = ok["ssim"].dropna()
            bar = self.min_ssim
            rows.append(
                {
                    "profile": name,
                    "scenes": len(ok),
                    "errors": len(group) - len(ok),
                    "bytes": int(ok["bytes"].fillna(0).sum()),
                    "est_bytes": int(ok["est_bytes"].fillna(0).sum()),
                    "est_saving": saving,
                    "mean_ratio": float(ok["ratio"].mean()) if len(ok) else math.nan,
                    "ssim_min": float(ssims.min()) if len(ssims) else math.nan,
                    "passing": int((ssims >= bar).sum()) if bar else len(ssims),
                    "encode_s": float(ok["encode_s"].sum()),
                }
            )
        return pd.DataFrame(rows, columns=SUMMARY_COLUMNS)

    def plot(self, x: str = "ratio", *, width: int = 720, height: int = 400) -> str:
        """Size against SSIM as an SVG scatter chart (a string): one marker per scene and
        profile that has an SSIM, one colour and shape per profile, the SSIM bar dashed.
        ``x``: ``"ratio"`` (raw ÷ COG), ``"bytes"`` (the sample's COG) or ``"est_bytes"``
        (the scene's estimated COG size), the sizes on a log scale."""
        if x not in X_AXES:
            raise ConfigError(f"x must be one of {', '.join(X_AXES)}, not {x!r}")
        return scatter_chart(self.df, x, self.min_ssim, self._profiles(), width, height)

    def _summary_html(self) -> str:
        s = self.summary()
        head = ("profile", "scenes", "errors", "sample COGs", "est. scene COGs", "est. saving",
                "mean ratio", "lowest SSIM", "pass the bar", "encode s")  # fmt: skip
        body = []
        for r in s.itertuples(index=False):
            ok = r.scenes + r.errors
            cells = (
                r.profile,
                str(r.scenes),
                str(r.errors),
                human_bytes(r.bytes),
                human_bytes(r.est_bytes),
                "–" if math.isnan(r.est_saving) else f"{r.est_saving:.0%}",
                "–" if math.isnan(r.mean_ratio) else f"{r.mean_ratio:.1f}×",
                "–" if math.isnan(r.ssim_min) else f"{r.ssim_min:.4f}",
                f"{r.passing}/{ok}",
                f"{r.encode_s:.2f}",
            )
            body.append(cells)
        return _table(head, body)

    def _rows_html(self) -> str:
        head = ("scene", "profile", "codec", "COG", "ratio", "est. scene COG", "SSIM",
                "PSNR dB", "encode s", "error")  # fmt: skip
        body = []
        for r in self.df.itertuples(index=False):
            codec = "" if is_missing(r.codec) else str(r.codec)
            if not is_missing(r.quality):
                codec += f" q{int(r.quality)}"
            body.append(
                (
                    short_name(r.scene),
                    r.profile,
                    codec,
                    human_bytes(None if is_missing(r.bytes) else int(r.bytes)),
                    "–" if is_missing(r.ratio) else f"{float(r.ratio):.1f}×",
                    human_bytes(None if is_missing(r.est_bytes) else int(r.est_bytes)),
                    "–" if is_missing(r.ssim) else f"{float(r.ssim):.4f}",
                    "identical" if is_missing(r.psnr) and not is_missing(r.ssim)
                    else "–" if is_missing(r.psnr) else f"{float(r.psnr):.1f}",
                    "–" if is_missing(r.encode_s) else f"{float(r.encode_s):.2f}",
                    "" if is_missing(r.error) else str(r.error),
                )
            )  # fmt: skip
        return _table(head, body)

    def _repr_html_(self) -> str:
        df = self.df
        scenes = df["scene"].nunique()
        sampled = bool(df["sample"].fillna(False).astype(bool).any())
        what = (
            "samples of up to four 512×512 windows per scene (smaller scenes whole)"
            if sampled
            else "whole scenes"
        )
        bar = f" · SSIM bar {self.min_ssim:g}" if self.min_ssim else ""
        return (
            (
                '<div class="compactor-compare" style="font-family:system-ui,sans-serif;'
                'font-size:13px">'
                f"<p><b>compactor compare</b>: {scenes} scene{'s' if scenes != 1 else ''} × "
                f"{len(self._profiles())} profiles · {what}{bar}</p>"
                + self.plot()
                + self._summary_html()
                + f"<details><summary>all {len(df)} rows</summary>{self._rows_html()}</details>"
                + "</div>"
            )
            .encode("ascii", "xmlcharrefreplace")
            .decode("ascii")
        )

    def __repr__(self) -> str:
        return f"Comparison of {len(self.df)} rows\n{self.summary().to_string(index=False)}"


def _table(head: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    cell = "padding:2px 8px;border-bottom:1px solid #eaecf0;text-align:left"
    out = ['<table style="border-collapse:collapse;margin:8px 0"><tr>']
    out += [f'<th style="{cell}">{esc(h)}</th>' for h in head]
    out.append("</tr>")
    for row in rows:
        out.append("<tr>" + "".join(f'<td style="{cell}">{esc(c)}</td>' for c in row) + "</tr>")
    out.append("</table>")
    return "".join(out)
