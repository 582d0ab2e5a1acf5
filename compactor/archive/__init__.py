"""Archiving originals: verified server-side copies to an archive storage class, the guarded
delete of exactly the version archived, versions and S3 Object Lock.
"""

from ._archive import (
    archive_holds,
    archive_link,
    copy_part_size,
    delete_exactly,
    digest_source,
    lock_reason,
    pending_problem,
    recheck_before_delete,
    server_copy,
)

__all__ = [
    "archive_holds",
    "archive_link",
    "copy_part_size",
    "delete_exactly",
    "digest_source",
    "lock_reason",
    "pending_problem",
    "recheck_before_delete",
    "server_copy",
]
