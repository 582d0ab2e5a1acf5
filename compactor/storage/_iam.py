"""Every S3 call compactor makes, and what IAM must allow for it.

The table :data:`S3_CALLS` is the source of ``helm/iam-policy.json`` (and of the optional
``helm/iam-policy-in-place.json``): for each boto3 client method used in ``compactor/``
(plus the listing pages of ``list_objects_v2``), the IAM action(s) it needs, on which
bucket role, and the headers it sends that IAM conditions look at.
``tests/storage/test_iam_policy.py`` scans the source for boto3 S3 calls, so a call that is not in
this table fails the tests until the table and the policy know it, and evaluates the
policy against every row.

Bucket roles:

* ``source``: the originals, ``SOURCE_BUCKET/SOURCE_PREFIX...``: read; deleted once archived.
* ``dest``: the COGs, ``DEST_BUCKET/DEST_PREFIX...``: written and read back.
* ``records``: compactor's own records, ``DEST_BUCKET/DEST_PREFIX_compactor/...`` (scene
  state, leases, run reports, STAC items): written, read, and (state and leases) deleted.
* ``archive``: the archived originals, ``ARCHIVE_BUCKET/ARCHIVE_PREFIX...``: created once,
  never overwritten or deleted.
* ``inventory``: S3 Inventory reports (``--inventory``),
  ``INVENTORY_BUCKET/INVENTORY_PREFIX...``: read only.
* ``in-place``: ``--archive in-place``, the originals rewritten onto themselves in an archive
  class (``SOURCE_BUCKET/SOURCE_PREFIX...``; only with ``iam-policy-in-place.json``).
* ``restore-target`` and ``demo``: ``compactor restore`` (an operator's task, granted
  separately) and ``compactor demo`` (the bundled local S3 server): not in the policy.

Headers (as IAM condition keys see them):

* ``If-None-Match``: ``s3:if-none-match`` (create only if absent).
* ``If-Match``: ``s3:if-match`` (replace or delete only that version).
* ``x-amz-storage-class``: ``s3:x-amz-storage-class``.
* ``x-amz-copy-source``: ``s3:x-amz-copy-source`` (``bucket/key`` of a server-side copy).

and, for the ``s3:PutObject`` action, ``s3:ObjectCreationOperation``: true for PutObject,
CopyObject and CompleteMultipartUpload (the requests that make an object appear), false for
CreateMultipartUpload, UploadPart and UploadPartCopy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Role = Literal[
    "source", "dest", "records", "archive", "inventory", "in-place", "restore-target", "demo"
]
Header = Literal["If-None-Match", "If-Match", "x-amz-storage-class", "x-amz-copy-source"]
PolicyFile = Literal["iam-policy.json", "iam-policy-in-place.json", "none"]

#: boto3 operations that create an object (``s3:ObjectCreationOperation`` is true).
CREATING = frozenset({"put_object", "copy_object", "complete_multipart_upload"})
#: Operations that are part of an object creation but do not complete it (false).
NOT_CREATING = frozenset({"create_multipart_upload", "upload_part", "upload_part_copy"})


@dataclass(frozen=True)
class S3Call:
    """One S3 request compactor makes on one bucket role."""

    #: The boto3 client method (``list_objects_v2``: the listing paginator).
    method: str
    #: IAM actions needed on ``role``'s object (or bucket, when ``bucket_level``).
    actions: tuple[str, ...]
    role: Role
    #: Where compactor makes it.
    where: str
    #: Headers it sends that IAM conditions see.
    headers: frozenset[Header] = frozenset()
    #: A bucket-level request (ListBucket ...), not on an object.
    bucket_level: bool = False
    #: For server-side copies: actions needed on the copy source, and its role.
    source_actions: tuple[str, ...] = ()
    source_role: Role | None = None
    #: Which policy file grants it.
    policy: PolicyFile = "iam-policy.json"

    @property
    def creation(self) -> bool | None:
        """``s3:ObjectCreationOperation`` of the request (None: not an object write)."""
        if self.method in CREATING:
            return True
        if self.method in NOT_CREATING:
            return False
        return None


_PUT = ("s3:PutObject",)
_GET = ("s3:GetObject",)
_TAGGED_PUT = ("s3:PutObject", "s3:PutObjectTagging")
_COPY_SOURCE = ("s3:GetObject", "s3:GetObjectTagging", "s3:GetObjectVersion")
#: Reading one version of an original, and seeing its Object Lock in the response.
_VERSION_READ = (
    "s3:GetObjectVersion", "s3:GetObjectLegalHold", "s3:GetObjectRetention",
)  # fmt: skip
_UPLOAD_LISTINGS: tuple[tuple[Role, PolicyFile], ...] = (
    ("dest", "iam-policy.json"),
    ("archive", "iam-policy.json"),
    ("in-place", "iam-policy-in-place.json"),
)
_CLASS_COPY: frozenset[Header] = frozenset({"x-amz-storage-class", "x-amz-copy-source"})

#: Every S3 call compactor makes. Keep it next to the code: a new call fails the tests
#: until it is listed here and the policy allows it.
S3_CALLS: tuple[S3Call, ...] = (
    # --- buckets and listings
    *(
        S3Call("head_bucket", ("s3:ListBucket",), role, "S3Store.bucket_exists", bucket_level=True)
        for role in ("source", "dest", "archive")
    ),
    *(
        S3Call(
            "list_objects_v2",
            ("s3:ListBucket",),
            role,
            "S3Store.listing (ListObjectsV2 pages): scenes, state records, index, audit, restore",
            bucket_level=True,
        )
        for role in ("source", "records", "dest", "archive")
    ),
    *(
        S3Call(
            "list_multipart_uploads",
            ("s3:ListBucketMultipartUploads",),
            role,
            "S3Store.abort_stale_uploads before a COG upload or a multipart archive copy",
            bucket_level=True,
            policy=policy,
        )
        for role, policy in _UPLOAD_LISTINGS
    ),
    S3Call(
        "list_bucket_intelligent_tiering_configurations",
        ("s3:GetIntelligentTieringConfiguration",),
        "archive",
        "sources.preflight: the archive tiers of an INTELLIGENT_TIERING archive",
        bucket_level=True,
    ),
    S3Call(
        "get_bucket_versioning",
        ("s3:GetBucketVersioning",),
        "source",
        "sources.preflight: is the source bucket versioned",
        bucket_level=True,
    ),
    # --- reads
    *(
        S3Call("head_object", _GET, role, "S3Store.head")
        for role in ("source", "dest", "records", "archive")
    ),
    S3Call(
        "get_object",
        _VERSION_READ,
        "source",
        "S3Store.fetch/sha256/head in a versioned bucket: exactly the version read, with its "
        "Object Lock (legal hold, retention) in the response",
    ),
    *(
        S3Call("get_object", _GET, role, "S3Store.read_bytes/read_versioned/sha256; GDAL reads")
        for role in ("source", "dest", "records", "archive")
    ),
    S3Call("download_file", _GET, "source", "S3Store.download (HeadObject + ranged GETs)"),
    *(
        S3Call("get_object_tagging", ("s3:GetObjectTagging",), role, "S3Store.get_tags")
        for role in ("source", "archive")
    ),
    # --- COGs
    S3Call("put_object", _PUT, "dest", "S3Store.put_file: a COG in one PUT"),
    S3Call(
        "create_multipart_upload",
        _PUT,
        "dest",
        "S3Parts.create: S3Store.put_file, scene (chunked outputs)",
    ),
    S3Call("upload_part", _PUT, "dest", "S3Store.upload_part"),
    S3Call("list_parts", ("s3:ListMultipartUploadParts",), "dest", "S3Store.list_parts"),
    S3Call("complete_multipart_upload", _PUT, "dest", "S3Store.complete_upload"),
    S3Call("abort_multipart_upload", ("s3:AbortMultipartUpload",), "dest", "S3Store.abort_upload"),
    # --- compactor's records
    S3Call(
        "put_object",
        _PUT,
        "records",
        "records.StateStore/scene lease: a new state record or lease",
        headers=frozenset({"If-None-Match"}),
    ),
    S3Call(
        "put_object",
        _PUT,
        "records",
        "records.StateStore/scene lease: replacing exactly the version read",
        headers=frozenset({"If-Match"}),
    ),
    S3Call("put_object", _PUT, "records", "report, sources: the run report and STAC items"),
    S3Call(
        "delete_object",
        ("s3:DeleteObject",),
        "records",
        "records.StateStore/scene lease: retiring a record, releasing a lease",
        headers=frozenset({"If-Match"}),
    ),
    # --- the archive copy (prefix mode)
    S3Call(
        "copy_object",
        _TAGGED_PUT,
        "archive",
        "archive.server_copy -> S3Store.copy (up to 5 GiB; tags copied)",
        headers=frozenset({"If-None-Match", *_CLASS_COPY}),
        source_actions=_COPY_SOURCE,
        source_role="source",
    ),
    S3Call(
        "create_multipart_upload",
        _TAGGED_PUT,
        "archive",
        "archive.server_copy -> S3Store.multipart_copy (above 5 GiB; tags set)",
        headers=frozenset({"x-amz-storage-class"}),
    ),
    S3Call(
        "upload_part_copy",
        _PUT,
        "archive",
        "S3Store.multipart_copy",
        headers=frozenset({"x-amz-copy-source"}),
        source_actions=_GET,
        source_role="source",
    ),
    S3Call(
        "complete_multipart_upload",
        _PUT,
        "archive",
        "S3Store.multipart_copy (never replaces an archived original)",
        headers=frozenset({"If-None-Match"}),
    ),
    S3Call(
        "abort_multipart_upload",
        ("s3:AbortMultipartUpload",),
        "archive",
        "S3Store.abort_upload (a failed multipart copy)",
    ),
    S3Call("restore_object", ("s3:RestoreObject",), "archive", "compactor restore: Glacier"),
    # --- the guarded delete of the original
    S3Call(
        "delete_object",
        ("s3:DeleteObject",),
        "source",
        "archive.delete_exactly (after the COG and the archive copy are verified)",
        headers=frozenset({"If-Match"}),
    ),
    S3Call(
        "delete_object",
        ("s3:DeleteObjectVersion",),
        "source",
        "archive.delete_exactly in a versioned bucket: exactly the archived version; "
        "in place, the version the archive-class copy replaced",
    ),
    # --- --archive in-place: the original rewritten onto itself in the archive class
    S3Call(
        "copy_object",
        _TAGGED_PUT,
        "in-place",
        "archive.server_copy(replace=True) -> S3Store.copy",
        headers=_CLASS_COPY,
        source_actions=_COPY_SOURCE,
        source_role="in-place",
        policy="iam-policy-in-place.json",
    ),
    S3Call(
        "create_multipart_upload",
        _TAGGED_PUT,
        "in-place",
        "S3Store.multipart_copy (above 5 GiB)",
        headers=frozenset({"x-amz-storage-class"}),
        policy="iam-policy-in-place.json",
    ),
    S3Call(
        "upload_part_copy",
        _PUT,
        "in-place",
        "S3Store.multipart_copy",
        headers=frozenset({"x-amz-copy-source"}),
        source_actions=_GET,
        source_role="in-place",
        policy="iam-policy-in-place.json",
    ),
    S3Call(
        "complete_multipart_upload",
        _PUT,
        "in-place",
        "S3Store.multipart_copy (replaces the original)",
        policy="iam-policy-in-place.json",
    ),
    S3Call(
        "abort_multipart_upload",
        ("s3:AbortMultipartUpload",),
        "in-place",
        "S3Store.abort_upload",
        policy="iam-policy-in-place.json",
    ),
    # --- S3 Inventory reports (--inventory)
    S3Call(
        "get_object",
        _GET,
        "inventory",
        "sources (inventory): manifest.json, manifest.checksum and the data files of a report",
    ),
    # --- not part of the nightly role
    S3Call(
        "copy_object",
        _PUT,
        "restore-target",
        "compactor restore --to (an operator grants it for the restore)",
        policy="none",
    ),
    S3Call(
        "put_object", _PUT, "restore-target", "compactor restore of a local file", policy="none"
    ),
    S3Call("create_bucket", ("s3:CreateBucket",), "demo", "demo (local server)", policy="none"),
    S3Call("upload_file", _PUT, "demo", "demo (local server)", policy="none"),
)


@dataclass(frozen=True)
class Placeholders:
    """Example buckets and prefixes, as placeholders of the policy files (or real values)."""

    source_bucket: str = "SOURCE_BUCKET"
    source_prefix: str = "SOURCE_PREFIX"
    dest_bucket: str = "DEST_BUCKET"
    dest_prefix: str = "DEST_PREFIX"
    archive_bucket: str = "ARCHIVE_BUCKET"
    archive_prefix: str = "ARCHIVE_PREFIX"
    inventory_bucket: str = "INVENTORY_BUCKET"
    inventory_prefix: str = "INVENTORY_PREFIX"
    #: A scene below each prefix.
    scene: str = "2021/05/LC08_scene.tif"

    def location(self, role: Role) -> tuple[str, str]:
        """(bucket, example key) of ``role``."""
        if role in ("source", "in-place"):
            return self.source_bucket, self.source_prefix + self.scene
        if role == "dest":
            return self.dest_bucket, self.dest_prefix + self.scene.replace(".tif", "_cog.tif")
        if role == "records":
            return self.dest_bucket, f"{self.dest_prefix}_compactor/state/{self.scene}.json"
        if role == "archive":
            return self.archive_bucket, self.archive_prefix + self.scene
        if role == "inventory":
            return (
                self.inventory_bucket,
                f"{self.inventory_prefix}{self.source_bucket}/daily/data/a.parquet",
            )
        return "RESTORE_BUCKET", self.scene
