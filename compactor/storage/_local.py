"""Local directories as a store: every write goes to a temporary file in the target
directory, is fsynced, then renamed into place (atomic); conditional writes compare and
swap under a per-directory lock."""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

from ..errors import ObjectNotFound, PreconditionFailed, SceneTooLargeError, StorageError
from ._base import IO_CHUNK, Capabilities, Digester, Fetched, ObjectInfo, Recorded, sha256_file
from ._location import Location


class LocalStore:
    """The same operations on a local filesystem, atomic by temp file + rename."""

    capabilities = Capabilities()

    def server_copier(self) -> None:
        return None

    def abort_stale_uploads(self, loc: Location) -> int:
        """Nothing to abort: local writes never leave partial objects under their name."""
        return 0

    def holds(self, loc: Location, record: Recorded) -> bool:
        """Whether the file holds the recorded object, by hashing it."""
        info = self.head(loc)
        if info is None or info.size != record.size or record.sha256 is None:
            return False
        return sha256_file(loc.key) == record.sha256

    def listing(self, prefix: Location) -> Iterator[ObjectInfo]:
        root = Path(prefix.key)
        if not root.exists():
            raise ObjectNotFound(f"listing {prefix.url} failed: no such directory", url=prefix.url)
        if root.is_file():
            yield self._info(root)
            return
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in sorted(filenames):
                p = Path(dirpath, name)
                if p.is_file():
                    yield self._info(p)

    def _info(self, p: Path) -> ObjectInfo:
        st = p.stat()
        return ObjectInfo(
            url=str(p),
            size=st.st_size,
            etag=_local_etag(st),
            mtime=datetime.fromtimestamp(st.st_mtime, UTC).isoformat(),
        )

    def head(self, loc: Location, version_id: str | None = None) -> ObjectInfo | None:
        p = Path(loc.key)
        return self._info(p) if p.is_file() else None

    def read_bytes(self, loc: Location) -> bytes:
        try:
            return Path(loc.key).read_bytes()
        except FileNotFoundError as err:
            raise ObjectNotFound(f"read {loc.url} failed: not found", url=loc.url) from err

    def read_versioned(self, loc: Location) -> tuple[bytes, str | None] | None:
        p = Path(loc.key)
        try:
            with open(p, "rb") as fh:
                data = fh.read()
                st = os.fstat(fh.fileno())
        except FileNotFoundError:
            return None
        return data, _local_etag(st)

    def sha256(
        self,
        loc: Location,
        *,
        etag: str | None = None,
        part_size: int | None = None,
        version_id: str | None = None,
    ) -> tuple[str, list[str]]:
        return sha256_file(loc.key), []

    def fetch(
        self,
        loc: Location,
        target: Path,
        *,
        digest: bool = True,
        part_size: int | None = None,
        max_bytes: int | None = None,
    ) -> Fetched | None:
        """A local source is read where it is (``target`` is not used); hashed when asked."""
        path = Path(loc.key)
        info = self.head(loc)
        if info is None:
            return None
        if max_bytes is not None and info.size > max_bytes:
            raise SceneTooLargeError(
                f"{loc.url}: the object grew after it was listed ({max_bytes:,} bytes listed, "
                f"it holds {info.size:,}); nothing was written"
            )
        if not digest:
            return Fetched(info, path)
        digester = Digester(part_size)
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(IO_CHUNK), b""):
                digester.update(block)
        sha, parts = digester.finish()
        if self.head(loc) != info:
            raise StorageError(f"{loc.url} changed while it was read", url=loc.url)
        return Fetched(info, path, sha, part_size, tuple(parts))

    def _atomic_write(self, loc: Location, write: Callable[[BinaryIO], object]) -> None:
        target = Path(loc.key)
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
        try:
            os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; give files the usual mode
            with os.fdopen(fd, "wb") as fh:
                write(fh)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, target)
            _fsync_dir(target.parent)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    def put_bytes(
        self,
        loc: Location,
        data: bytes,
        *,
        content_type: str = "application/json",
        if_none_match: bool = False,
        if_match: str | None = None,
    ) -> str:
        """Atomic write (temp file renamed into place); the condition is checked and the
        file replaced under a per-target lock, so concurrent writers on this host serialise."""
        target = Path(loc.key)
        with _locked(target):
            current = self.head(loc)
            if if_none_match and current is not None:
                raise PreconditionFailed(f"{loc.url} exists", url=loc.url)
            if if_match and (current is None or current.etag != if_match):
                raise PreconditionFailed(f"{loc.url} changed", url=loc.url)
            self._atomic_write(loc, lambda fh: fh.write(data))
            info = self.head(loc)
        assert info is not None
        return info.etag or ""

    def put_file(
        self,
        path: Path,
        loc: Location,
        *,
        sha256_hex: str,
        content_type: str = "",
        metadata: dict[str, str] | None = None,
        multipart_threshold: int = 0,
        part_size: int = 0,
        if_none_match: bool = False,
        storage_class: str | None = None,
        sse_kms_key: str | None = None,
    ) -> ObjectInfo:
        def write(fh: BinaryIO) -> None:
            with open(path, "rb") as src:
                shutil.copyfileobj(src, fh, IO_CHUNK)

        if if_none_match:
            with _locked(Path(loc.key)):
                if self.head(loc) is not None:
                    raise PreconditionFailed(f"{loc.url} exists", url=loc.url)
                self._atomic_write(loc, write)
        else:
            self._atomic_write(loc, write)
        if sha256_file(loc.key) != sha256_hex:
            raise StorageError(f"{loc.url} does not match what was written", url=loc.url)
        info = self.head(loc)
        assert info is not None
        return info

    def link(self, src: Location, dst: Location) -> None:
        """A hard link on one filesystem, else an atomic copy; the caller deletes the
        source once the link is verified."""
        target = Path(dst.key)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(src.key, target)  # same filesystem: the bytes are now at both names
        except FileExistsError as err:
            raise PreconditionFailed(f"{dst.url} exists", url=dst.url) from err
        except OSError:
            self._atomic_write(dst, lambda fh: _copy_into(src.key, fh))
        _fsync_dir(target.parent)

    def delete(
        self, loc: Location, *, if_match: str | None = None, version_id: str | None = None
    ) -> None:
        """Remove the file, only if it is still ``if_match`` (files have no versions)."""
        target = Path(loc.key)
        with _locked(target):
            if if_match:
                current = self.head(loc)
                if current is not None and current.etag != if_match:
                    raise PreconditionFailed(f"{loc.url} changed", url=loc.url)
            try:
                target.unlink()
            except FileNotFoundError as err:
                raise ObjectNotFound(f"delete {loc.url} failed: not found", url=loc.url) from err
        _fsync_dir(target.parent)


def _local_etag(st: os.stat_result) -> str:
    """A version tag for a local file: every atomic write renames a new file (a new inode)
    into place, so inode, size and mtime together change on every write."""
    return f"{st.st_ino:x}-{st.st_size:x}-{st.st_mtime_ns:x}"


@contextmanager
def _locked(target: Path) -> Iterator[None]:
    """An exclusive lock on the target's directory, across processes on this host, for
    the compare-and-swap of conditional writes (flock on the directory itself, so no lock
    files are left behind)."""

    target.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(target.parent, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _umask() -> int:
    """The process umask (read from /proc where possible; setting it back otherwise)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except OSError:
        pass
    current = os.umask(0o022)
    os.umask(current)
    return current


def _copy_into(path: str, fh: BinaryIO) -> None:
    with open(path, "rb") as src:
        shutil.copyfileobj(src, fh, IO_CHUNK)


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
