"""Archiving originals: verified server-side copies to an archive storage class, the guarded
delete, versions, and the per-scene leases that keep two runs off one scene.
"""

from ._archive import (
    SourceDigest,
    archive_holds,
    archive_link,
    copy_part_size,
    delete_exactly,
    digest_source,
    lock_reason,
    pending_problem,
    recheck_before_delete,
    server_copy,
    source_metadata_header,
)
from ._lease import Lease

__all__ = [
    "Lease",
    "SourceDigest",
    "archive_holds",
    "archive_link",
    "copy_part_size",
    "delete_exactly",
    "digest_source",
    "lock_reason",
    "pending_problem",
    "recheck_before_delete",
    "server_copy",
    "source_metadata_header",
]
