"""Discovery: globs, exclusions, output names, and clear errors."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from compactor.errors import ConfigError, DiscoveryError
from compactor.records import SceneResult
from compactor.scene import RunContext, SceneSpec, assign_outputs, output_relative
from compactor.settings import resolve_settings
from compactor.sources import check_locations, discover

from ..conftest import S3


@dataclass
class Found:
    scenes: list[SceneSpec]
    rejected: list[SceneResult]
    excluded: int


def _discover(**args: object) -> Found:
    """Discovery run to its end (it is a stream)."""
    settings = resolve_settings(args)
    check_locations(settings)
    found = discover(settings, RunContext.from_settings(settings, "test-run"))
    items = list(found)
    return Found(
        [i for i in items if isinstance(i, SceneSpec)],
        [i for i in items if isinstance(i, SceneResult)],
        found.counts.excluded,
    )


def test_output_names() -> None:
    assert output_relative("a/b.jp2") == "a/b.tif"
    assert output_relative("a/b.TIFF") == "a/b.tif"
    assert output_relative("noext") == "noext.tif"
    assert assign_outputs(["a.tif", "a.jp2", "a.TIF", "b.ntf"]) == {
        "a.tif": "a.tif", "a.jp2": "a.jp2.tif", "a.TIF": "a.TIF.tif", "b.ntf": "b.tif",
    }  # fmt: skip


def test_globs_are_case_insensitive_and_recursive(s3: S3) -> None:
    for key in [
        "x/A.TIF",
        "x/deep/b.tiff",
        "x/c.jp2",
        "x/d.NTF",
        "x/e.img",
        "x/readme.txt",
        "x/f.png",
    ]:
        s3.put("src-bucket", key, b"0")
    found = _discover(source="s3://src-bucket/x/", dest="s3://dst-bucket/out/")
    assert [s.relative for s in found.scenes] == ["A.TIF", "c.jp2", "d.NTF", "deep/b.tiff", "e.img"]
    assert found.excluded == 2
    only = _discover(
        source="s3://src-bucket/x/",
        dest="s3://dst-bucket/out/",
        include=["*.tif*"],
        exclude=["deep/*"],
    )
    assert [s.relative for s in only.scenes] == ["A.TIF"]


def test_own_prefixes_are_never_sources(s3: S3) -> None:
    for key in ["all/s.tif", "all/cogs/s.tif", "all/arch/s.tif", "all/cogs/_compactor/state/x.tif"]:
        s3.put("src-bucket", key, b"0")
    found = _discover(
        source="s3://src-bucket/all/",
        dest="s3://src-bucket/all/cogs/",
        archive="s3://src-bucket/all/arch/",
    )
    assert [s.relative for s in found.scenes] == ["s.tif"]
    assert found.scenes[0].output == "s3://src-bucket/all/cogs/s.tif"
    assert found.scenes[0].archive == "s3://src-bucket/all/arch/s.tif"


def test_empty_listing_is_a_clear_error(s3: S3) -> None:
    s3.put("src-bucket", "x/readme.txt", b"0")
    with pytest.raises(
        DiscoveryError,
        match=r"no scenes under s3://src-bucket/x/ match .*1 object listed, 1 excluded",
    ):
        _discover(source="s3://src-bucket/x/", dest="s3://dst-bucket/out/")
    with pytest.raises(DiscoveryError, match="no scenes"):
        _discover(source="s3://src-bucket/nothing-here/", dest="s3://dst-bucket/out/")


def test_single_object_source(s3: S3) -> None:
    s3.put("src-bucket", "x/one.tif", b"0")
    s3.put("src-bucket", "x/two.tif", b"0")
    found = _discover(source="s3://src-bucket/x/one.tif", dest="s3://dst-bucket/out/")
    assert [s.relative for s in found.scenes] == ["one.tif"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ({"dest": "s3://d/x/"}, "source is required"),
        ({"source": "s3://s-b/x/"}, "destination is required"),
        ({"source": "s3://s-b/x/", "dest": "s3://s-b/x"}, "must differ"),
        ({"source": "/tmp/x", "dest": "/tmp/y", "archive": "in-place"}, "local"),
        ({"source": "s3://s-b/x/", "dest": "s3://d-b/", "archive": "/tmp/arch"}, "s3:// prefix"),
        ({"source": "s3://s-b/x/", "dest": "s3://d-b/", "archive": "s3://s-b/x/"}, "in-place"),
        (
            {"source": "/tmp/s", "dest": "/tmp/out", "archive": "/tmp/out/orig"},
            "inside one another",
        ),
        (
            {"source": "s3://s-b/x/", "dest": "s3://a-b/arch/cogs/", "archive": "s3://a-b/arch/"},
            "inside one another",
        ),
    ],
)
def test_location_usage_errors(args: dict[str, str], message: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=message):
        _discover(**args)


def test_pending_stream_builds_the_same_specs(s3: S3) -> None:
    """A sampled plan builds specs only for the scenes it draws (``Discovery.pending`` and
    ``spec_of``): the same specs, refusals and counts as the eager stream, colliding
    outputs and archive copies included."""
    for key in ["x/a.tif", "x/a.jp2", "x/a.TIF", "x/b.ntf", "x/deep/c.tif", "x/d..tif"]:
        s3.put("src-bucket", key, b"0")
    s3.put("src-bucket", "x/bad//e.tif", b"0")
    args = {"source": "s3://src-bucket/x/", "dest": "s3://dst-bucket/out/",
            "archive": "s3://dst-bucket/archive/"}  # fmt: skip
    settings = resolve_settings(args)
    eager = discover(settings, RunContext.from_settings(settings, "test-run"))
    lazy = discover(settings, RunContext.from_settings(settings, "test-run"))
    built = [i if isinstance(i, SceneResult) else lazy.spec_of(i) for i in lazy.pending()]
    assert built == list(eager)
    assert [s.listed for s in built if isinstance(s, SceneSpec)] == [
        s.listed for s in list(discover(settings, RunContext.from_settings(settings, "t")))
        if isinstance(s, SceneSpec)
    ]  # fmt: skip
    assert lazy.counts == eager.counts
    outputs = {s.relative: s.output for s in built if isinstance(s, SceneSpec)}
    assert outputs["a.jp2"] == "s3://dst-bucket/out/a.jp2.tif"
    assert outputs["a.tif"] == "s3://dst-bucket/out/a.tif"
    assert [r.source for r in built if isinstance(r, SceneResult)] == [
        "s3://src-bucket/x/bad//e.tif"
    ]


def test_listed_object_info_is_the_dataclass() -> None:
    from compactor.storage import ObjectInfo

    made = ObjectInfo("s3://b/k", 3, '"e"', "2024-01-01T00:00:00+00:00", "GLACIER")
    fast = ObjectInfo.listed("s3://b/k", 3, '"e"', "2024-01-01T00:00:00+00:00", "GLACIER")
    assert fast == made
    assert repr(fast) == repr(made)
    assert fast.metadata == {}
    assert fast.metadata is not ObjectInfo.listed("s3://b/j", 1).metadata
    with pytest.raises(AttributeError):
        fast.size = 4  # type: ignore[misc]
