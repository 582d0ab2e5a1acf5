"""The checks a walk resuming at the delete makes before it deletes an original on the
strength of a record: the archive copy (or, in place, the current version) must hold the
original's very bytes, hashed again from the source.

A multipart copy's SHA-256 is the composite of its parts'. The moto server, like some
stores, reports it on a HEAD without the ``-N`` suffix a GET shows: the checks must still
hash the source by parts there (the ETag says the object is multipart), else a resumed
delete refuses an archive copy that holds exactly the original's bytes (the flaky
``test_sigkill_at_every_step[before-delete-versioned]``: big.tif archived before the kill)."""

from __future__ import annotations

import os

import pytest

from compactor.archive import archive_holds, digest_source, pending_problem, server_copy
from compactor.errors import ArchiveError
from compactor.storage import Location, ObjectInfo, S3Options, S3Store

from ..conftest import S3

PART = 5 * 1024**2
SIZE = PART + 700_000  # two parts
SRC = Location.parse("s3://src-bucket/scenes/big.tif")
ARC = Location.parse("s3://arc-bucket/orig/big.tif")


def _store(s3: S3) -> S3Store:
    return S3Store(S3Options(endpoint_url=s3.endpoint))


def _copy(store: S3Store, src: Location, dst: Location, live: ObjectInfo, replace: bool) -> None:
    copier = store.server_copier()
    assert copier is not None
    digest = digest_source(store, src, live.etag, PART, live.version_id)
    server_copy(
        copier, src, dst, live, digest, "GLACIER", multipart_threshold=PART, part_size=PART,
        replace=replace, leased=True,
    )  # fmt: skip


@pytest.mark.parametrize("versioned", [False, True], ids=["plain", "versioned"])
def test_a_multipart_archive_copy_of_the_original_is_accepted_and_another_refused(
    s3: S3, versioned: bool
) -> None:
    if versioned:
        s3.client.put_bucket_versioning(
            Bucket="src-bucket", VersioningConfiguration={"Status": "Enabled"}
        )
    store = _store(s3)
    s3.put("src-bucket", SRC.key, os.urandom(SIZE))
    live = store.head(SRC)
    assert live is not None
    _copy(store, SRC, ARC, live, replace=False)
    copy = store.head(ARC)
    assert copy is not None
    assert copy.checksum_sha256
    assert "-" in (copy.etag or "")  # a multipart object

    archive_holds(store, SRC, ARC, live, PART)  # the very bytes: no refusal

    # The same size, other bytes (one byte changed in the second part): refused.
    other = Location.parse("s3://src-bucket/scenes/other.tif")
    data = bytearray(s3.read("src-bucket", SRC.key))
    data[-1] ^= 0xFF
    s3.put("src-bucket", other.key, bytes(data))
    other_live = store.head(other)
    assert other_live is not None
    with pytest.raises(ArchiveError, match="does not hold the original's bytes"):
        archive_holds(store, other, ARC, other_live, PART)


def test_in_place_the_replaced_version_is_shown_to_hold_the_current_ones_bytes(s3: S3) -> None:
    s3.client.put_bucket_versioning(
        Bucket="src-bucket", VersioningConfiguration={"Status": "Enabled"}
    )
    store = _store(s3)
    s3.put("src-bucket", SRC.key, os.urandom(SIZE))
    old = store.head(SRC)
    assert old is not None
    assert old.version_id
    _copy(store, SRC, SRC, old, replace=True)  # the archive-class copy: a new version
    assert pending_problem(store, SRC, old.version_id, "GLACIER", PART) is None

    # A version with other bytes of the same size is not the one the copy replaced.
    data = bytearray(s3.read("src-bucket", SRC.key))  # the copy: the old version's bytes
    data[0] ^= 0xFF
    forged = s3.client.put_object(Bucket="src-bucket", Key=SRC.key, Body=bytes(data))
    _copy(store, SRC, SRC, store.head(SRC) or old, replace=True)
    why = pending_problem(store, SRC, old.version_id, "GLACIER", PART)
    assert why is not None
    assert "differ" in why, why
    assert forged["VersionId"] != old.version_id
