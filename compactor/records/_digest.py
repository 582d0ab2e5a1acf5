"""Our own hashes of an original, taken as it is read once: what its archive copy is
checked against."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from ..storage import b64


@dataclass(frozen=True)
class SourceDigest:
    """Our own hashes of an original: the full SHA-256, and for multipart copies the
    part size and the composite (base64 SHA-256 of the concatenated part digests)."""

    sha256: str
    part_size: int | None = None
    composite: str | None = None

    def accepts(self, reported: str | None) -> bool | None:
        """Whether a store-reported SHA-256 matches (``None``: nothing reported)."""
        if not reported:
            return None
        value = reported.split("-", 1)[0]
        return value == b64(bytes.fromhex(self.sha256)) or value == self.composite

    @classmethod
    def of(cls, sha256: str, part_size: int | None, parts: Sequence[str]) -> SourceDigest:
        """From a full SHA-256 and the part digests of a ``part_size`` split (if any)."""
        if part_size and parts:
            joined = b"".join(base64.b64decode(p) for p in parts)
            return cls(sha256, part_size, b64(hashlib.sha256(joined).digest()))
        return cls(sha256)
