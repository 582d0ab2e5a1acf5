"""S3 requests and their prices: the tier S3 bills each operation at, the requests a
run's archiving and listing take, and their cost by the class written or read.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from ._prices import STANDARD, PriceTable, RequestTier

# --- requests ------------------------------------------------------------------------------

#: Operations S3 bills at the "PUT, COPY, POST, LIST" price.
PUT_OPERATIONS = frozenset(
    {
        "PutObject", "CopyObject", "PostObject", "ListObjects", "ListObjectsV2",
        "ListObjectVersions", "ListMultipartUploads", "ListParts", "ListBuckets",
        "CreateMultipartUpload", "UploadPart", "UploadPartCopy", "CompleteMultipartUpload",
        "PutObjectTagging", "PutObjectRetention", "PutObjectLegalHold", "PutObjectAcl",
        "RestoreObject",
    }
)  # fmt: skip
#: Operations S3 does not bill (DELETE and CANCEL requests).
FREE_OPERATIONS = frozenset(
    {"DeleteObject", "DeleteObjects", "DeleteObjectTagging", "AbortMultipartUpload"}
)
_PUT_PREFIXES = ("Put", "Post", "Copy", "List", "Create", "Complete", "Upload", "Restore")
_FREE_PREFIXES = ("Delete", "Abort")
#: Operations that write the archive copy: billed at the archive class's PUT price.
ARCHIVE_WRITES = frozenset({"CopyObject", "UploadPartCopy"})

TIER_LABELS: dict[RequestTier, str] = {
    "put": "PUT, COPY, POST, LIST requests",
    "get": "GET, HEAD and other requests",
    "free": "DELETE requests (free)",
}


def request_tier(operation: str) -> RequestTier:
    """The price column an S3 operation is billed in: ``put`` (PUT, COPY, POST, LIST and
    the multipart operations), ``get`` (GET, HEAD and every other request) or ``free``
    (DELETE, abort). Unknown names are classed by their verb."""
    if operation in FREE_OPERATIONS:
        return "free"
    if operation in PUT_OPERATIONS:
        return "put"
    if operation.startswith(_FREE_PREFIXES):
        return "free"
    if operation.startswith(_PUT_PREFIXES):
        return "put"
    return "get"


def split_requests(
    requests: Mapping[str, int], archive_class: str | None
) -> Iterator[tuple[str, RequestTier, str, int]]:
    """A scene's requests as (operation, price column, class billed, count).

    Every request is billed at STANDARD (outputs, records, leases, the original read)
    except the archive copy, at ``archive_class``'s PUT price: CopyObject, UploadPartCopy,
    and, for a multipart copy (a scene that made UploadPartCopy requests), one
    CreateMultipartUpload and one CompleteMultipartUpload (the others are its output's)."""
    multipart_copy = archive_class is not None and requests.get("UploadPartCopy", 0) > 0
    for op, count in requests.items():
        if count <= 0:
            continue
        tier = request_tier(op)
        if archive_class is None or tier != "put":
            yield op, tier, STANDARD, count
        elif op in ARCHIVE_WRITES:
            yield op, tier, archive_class, count
        elif multipart_copy and op in ("CreateMultipartUpload", "CompleteMultipartUpload"):
            yield op, tier, archive_class, 1
            if count > 1:
                yield op, tier, STANDARD, count - 1
        else:
            yield op, tier, STANDARD, count


def requests_usd(
    requests: Mapping[str, int], prices: PriceTable, archive_class: str | None = None
) -> float:
    """What ``requests`` cost (see :func:`split_requests`)."""
    return sum(
        n * prices.of(cls).request_price(tier) / 1000
        for _, tier, cls, n in split_requests(requests, archive_class)
    )


#: Requests an original costs to archive beyond what its scene costs anyway (the table in
#: docs/backfill.md): the COPY into the archive class and the HEAD that checks the archive key
#: is free (in place: the HEAD of the copy, and the state record ``verified`` written
#: before the class changes). The delete is free.
ARCHIVE_REQUESTS = {"CopyObject": 1, "HeadObject": 1}
ARCHIVE_REQUESTS_IN_PLACE = {"CopyObject": 1, "HeadObject": 1, "PutObject": 1}

#: What a plan estimates a scene's task to request (the table "What a scene costs
#: in S3 requests" in docs/backfill.md), by what the scene would become.
PLAN_REQUESTS: dict[str, dict[str, int]] = {
    "prefix": {"PutObject": 3, "GetObject": 2, "HeadObject": 1, "CopyObject": 1,
               "DeleteObject": 2},
    "in-place": {"PutObject": 4, "GetObject": 2, "CopyObject": 1, "HeadObject": 1,
                 "DeleteObject": 1},
    "none": {"PutObject": 3, "GetObject": 2, "DeleteObject": 1},
    "left as it is": {"PutObject": 2, "GetObject": 2, "DeleteObject": 1},
    "already done": {"PutObject": 1, "GetObject": 1, "HeadObject": 2, "DeleteObject": 1},
}  # fmt: skip
#: Keys a listing page holds (one LIST request each).
LIST_PAGE = 1000


def listing_requests(objects: int) -> dict[str, int]:
    """The LIST requests a listing of ``objects`` objects takes."""
    return {"ListObjectsV2": max(1, -(-objects // LIST_PAGE))} if objects else {}
