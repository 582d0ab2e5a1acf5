"""DirectoryParts: the parts concatenated in order, hashed from the completed file, checked
whole before the rename; nothing left behind when a check or the size fails."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from compactor.errors import StorageError, VerificationError
from compactor.storage import DirectoryParts


def _parts() -> dict[int, bytes]:
    # Out of order, one empty, one larger than a copy block (8 MiB).
    return {3: b"tail", 1: os.urandom(9 * 1024 * 1024), 2: b""}


@pytest.mark.parametrize("durable", [True, False])
def test_complete_concatenates_in_order_and_hashes_the_file(tmp_path: Path, durable: bool) -> None:
    target = tmp_path / "out" / "scene.tif"
    writer = DirectoryParts.create(target, tmp_path / "scratch", durable=durable)
    parts = _parts()
    sent = [writer.put(n, data) for n, data in parts.items()]
    whole = b"".join(parts[n] for n in sorted(parts))
    seen: list[bytes] = []
    written = writer.complete(sent, len(whole), lambda p: seen.append(p.read_bytes()))
    assert target.read_bytes() == whole
    assert seen == [whole]  # the check saw the whole file before the rename
    assert written.size == len(whole)
    assert written.sha256 == hashlib.sha256(whole).hexdigest()
    assert not Path(writer.folder).exists()
    assert sorted(p.name for p in target.parent.iterdir()) == ["scene.tif"]


def test_a_failed_check_or_size_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "scene.tif"
    writer = DirectoryParts.create(target)
    sent = [writer.put(1, b"abc")]

    def refuse(path: Path) -> None:
        raise VerificationError("tile 0 is not the bytes encoded")

    with pytest.raises(VerificationError):
        writer.complete(sent, 3, refuse)
    assert list(tmp_path.iterdir()) == []
    writer = DirectoryParts.create(target)
    sent = [writer.put(1, b"abc")]
    with pytest.raises(StorageError, match="planned 4"):
        writer.complete(sent, 4)
    assert list(tmp_path.iterdir()) == []
