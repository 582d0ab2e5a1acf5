"""Which listed objects are sidecars of which raster (:mod:`compactor.gdal._sidecars`), as a
table; the runs are in test_sidecars_run.py."""

from __future__ import annotations

import pytest

from compactor.gdal._sidecars import Group, group_sidecars, renamed, sidecar_names

# --- the grouping, as a table -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("keys", "groups", "lone"),
    [
        (["a.tif"], [Group("a.tif")], []),
        (
            ["a.RPB", "a.tif", "a.tif.aux.xml", "a.tif.msk", "a.tif.ovr", "a.tfw", "a_rpc.txt"],
            [
                Group(
                    "a.tif",
                    ("a.RPB", "a.tif.aux.xml", "a.tif.msk", "a.tif.ovr", "a.tfw", "a_rpc.txt"),
                )
            ],
            [],
        ),
        # a sidecar without its raster is never a scene, and never moved
        (
            ["gone.tif.aux.xml", "x.tif.ovr", "b.tif"],
            [Group("b.tif")],
            ["gone.tif.aux.xml", "x.tif.ovr"],
        ),
        # sidecars are per folder
        (
            ["d/a.tif", "a.tif.aux.xml", "d/a.tif.aux.xml"],
            [Group("d/a.tif", ("d/a.tif.aux.xml",))],
            ["a.tif.aux.xml"],
        ),
        # read by two rasters: left where it is for both
        (
            ["a.jp2", "a.rpb", "a.tif", "a.tif.aux.xml"],
            [Group("a.jp2"), Group("a.tif", ("a.tif.aux.xml",))],
            ["a.rpb"],
        ),
        # names GDAL does not read for it: another case, another raster's stem
        (
            ["a.tif", "A.TIF.aux.xml", "ab.rpb", "a.tif.AUX.XML"],
            [Group("a.tif")],
            ["A.TIF.aux.xml", "ab.rpb", "a.tif.AUX.XML"],
        ),
        # a stem with dots: the stem is the name without its last extension
        (
            ["s.v1.tif", "s.v1.imd", "s.v1_rpc.txt", "s.v1.tifw"],
            [Group("s.v1.tif", ("s.v1.imd", "s.v1_rpc.txt", "s.v1.tifw"))],
            [],
        ),
    ],
)
def test_group_sidecars(keys: list[str], groups: list[Group], lone: list[str]) -> None:
    assert group_sidecars(keys) == (groups, lone)


def test_sidecar_names_follow_gdal() -> None:
    names = sidecar_names("a.jp2")
    for name in ("a.jp2.aux.xml", "a.jp2.ovr", "a.jp2.msk", "a.RPB", "a_rpc.txt", "a.j2w",
                 "a.jp2w", "a.wld", "a.aux", "a.IMD"):  # fmt: skip
        assert name in names
    assert "a.jp2" not in names
    assert renamed("a.TIF", "a.TIF.aux.xml", "source.tif") == "source.tif.aux.xml"
    assert renamed("a.tif", "a_rpc.txt", "source.tif") == "source_rpc.txt"
