"""Where a run's files live: a local folder or an object-store prefix, behind one API.

``dataset.root`` and ``output_dir`` may be local paths or URIs (``s3://bucket/prefix``,
``gs://bucket/prefix``); every read and write of results and images goes through a
:class:`Location`, so actors on any node read and write the same objects and the
driver never needs a shared disk. Endpoint and credentials come from the standard
environment variables (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_REGION``; ``GOOGLE_APPLICATION_CREDENTIALS``), so
one config runs against AWS, GCS, MinIO or SeaweedFS.

Object stores have no rename, so "complete" cannot mean "renamed into place": a
single PUT is atomic (readers see the whole object or none), locally a file is
written to a temporary name and renamed. Which shards a stage finished is said by
commit records (:mod:`pipeline.commits`), never inferred from a file's presence.
A Location is a plain string underneath: it pickles to Ray actors, and each
process builds its own filesystem client.
"""

from __future__ import annotations

import contextlib
import fnmatch
import functools
import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from pipeline.results.write_error import writing

#: pyarrow's S3 client (AWS SDK) otherwise sends checksums that some S3-compatible
#: servers store as part of the object: SeaweedFS then returns corrupt files.
CHECKSUM_ENV = "AWS_REQUEST_CHECKSUM_CALCULATION"
SCHEMES = ("s3", "gs")


class StorageError(OSError):
    """A location cannot be read or written; the message names it and the fix."""


def is_uri(text: str | os.PathLike[str]) -> bool:
    return "://" in str(text)


@functools.cache
def _s3() -> pafs.FileSystem:
    os.environ.setdefault(CHECKSUM_ENV, "when_required")
    endpoint = os.environ.get("AWS_ENDPOINT_URL") or None
    options: dict[str, Any] = {"region": os.environ.get("AWS_REGION") or None}
    if endpoint:
        parsed = urlparse(endpoint if "://" in endpoint else f"https://{endpoint}")
        options |= {"endpoint_override": parsed.netloc, "scheme": parsed.scheme}
    return pafs.S3FileSystem(**{k: v for k, v in options.items() if v is not None})


@functools.cache
def _gcs() -> pafs.FileSystem:
    return pafs.GcsFileSystem()


def _filesystem(scheme: str) -> pafs.FileSystem:
    if scheme == "s3":
        return _s3()
    if scheme == "gs":
        return _gcs()
    if scheme in ("", "file"):
        return pafs.LocalFileSystem()
    raise StorageError(
        f"unsupported storage scheme {scheme!r}: use a local path, s3://bucket/prefix or "
        "gs://bucket/prefix"
    )


class Location:
    """A file or folder, local or on an object store, with the pathlib calls the pipeline uses."""

    __slots__ = ("uri",)

    def __init__(self, where: str | os.PathLike[str] | Location) -> None:
        if isinstance(where, Location):
            self.uri: str = where.uri
        elif is_uri(where):
            scheme, rest = str(where).split("://", 1)
            if scheme == "file":
                self.uri = str(Path(rest).absolute())
            else:
                self.uri = f"{scheme}://{rest.strip('/')}"
        else:
            self.uri = str(Path(where).absolute())

    # --- identity -------------------------------------------------------------------
    @property
    def scheme(self) -> str:
        return self.uri.split("://", 1)[0] if is_uri(self.uri) else ""

    @property
    def is_local(self) -> bool:
        return not self.scheme

    @property
    def local_path(self) -> Path:
        """The local path; only for local locations (MLflow, PIL, figures need files)."""
        if not self.is_local:
            raise StorageError(f"{self.uri} is not a local path")
        return Path(self.uri)

    @property
    def fs(self) -> pafs.FileSystem:
        return _filesystem(self.scheme)

    @property
    def path(self) -> str:
        """The path inside :attr:`fs` (``bucket/key`` on object stores)."""
        return self.uri.split("://", 1)[1] if is_uri(self.uri) else self.uri

    def __truediv__(self, part: str) -> Location:
        return Location(f"{self.uri.rstrip('/')}/{part}")

    @property
    def name(self) -> str:
        return PurePosixPath(self.path).name

    @property
    def parent(self) -> Location:
        parent = str(PurePosixPath(self.path).parent)
        return Location(f"{self.scheme}://{parent}" if self.scheme else parent)

    def relative_to(self, other: Location) -> PurePosixPath:
        return PurePosixPath(self.path).relative_to(PurePosixPath(other.path))

    def __str__(self) -> str:
        return self.uri

    def __repr__(self) -> str:
        return f"Location({self.uri!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Location) and other.uri == self.uri

    def __hash__(self) -> int:
        return hash(self.uri)

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return (Location, (self.uri,))

    # --- queries ----------------------------------------------------------------------
    def _info(self) -> pafs.FileInfo:
        return self.fs.get_file_info(self.path)

    def is_file(self) -> bool:
        return bool(self._info().type == pafs.FileType.File)

    def is_dir(self) -> bool:
        if self.is_local:
            return self.local_path.is_dir()
        # object stores have no folders: a prefix "exists" when something is under it
        selector = pafs.FileSelector(self.path, allow_not_found=True, recursive=False)
        return bool(self.fs.get_file_info(selector))

    def exists(self) -> bool:
        return self.is_file() or self.is_dir()

    def files(self, pattern: str = "*") -> list[Location]:
        """Files below this folder whose path relative to it matches ``pattern`` (fnmatch:
        ``*`` crosses ``/``), sorted. One listing call, on object stores too."""
        selector = pafs.FileSelector(self.path, allow_not_found=True, recursive=True)
        base = PurePosixPath(self.path)
        out = []
        for info in self.fs.get_file_info(selector):
            if info.type != pafs.FileType.File:
                continue
            rel = PurePosixPath(info.path).relative_to(base).as_posix()
            if fnmatch.fnmatchcase(rel, pattern):
                out.append(self / rel)
        return sorted(out, key=lambda loc: loc.uri)

    # --- bytes ------------------------------------------------------------------------
    def read_bytes(self) -> bytes:
        try:
            with self.fs.open_input_stream(self.path) as f:
                return bytes(f.read())
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise StorageError(f"{self.uri}: cannot read ({exc})") from None

    def read_text(self) -> str:
        return self.read_bytes().decode("utf-8")

    def write_bytes(self, data: bytes) -> None:
        """Write so that readers see the whole file or none of it."""
        if self.is_local:
            path = self.local_path
            tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
            with writing(path):  # a full disk, a read-only folder: one line naming the file
                try:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    tmp.write_bytes(data)
                    os.replace(tmp, path)
                finally:
                    with contextlib.suppress(OSError):  # never made: its folder is missing
                        tmp.unlink(missing_ok=True)
            return
        try:
            with self.fs.open_output_stream(self.path) as f:
                f.write(data)
        except OSError as exc:
            raise StorageError(
                f"{self.uri}: cannot write ({exc}); check the bucket exists and that "
                "AWS_ENDPOINT_URL / AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY allow writing"
            ) from None

    def write_text(self, text: str) -> None:
        self.write_bytes(text.encode("utf-8"))

    def delete(self) -> None:
        """Remove the file if it is there."""
        with contextlib.suppress(FileNotFoundError):
            self.fs.delete_file(self.path)

    def delete_tree(self) -> None:
        """Remove the folder and everything under it, if it is there."""
        if self.is_dir():
            self.fs.delete_dir(self.path)


#: A run directory as callers hold it: a Location, or a local Path (tests, notebooks).
RunDir = Location | Path


def location(where: str | os.PathLike[str] | Location) -> Location:
    """Any path, URI or Location, as a Location."""
    return where if isinstance(where, Location) else Location(where)


def join_uri(root: str, relative: str) -> str:
    """``root / relative`` as a string a manifest can hold (local path or URI)."""
    return str(location(root) / relative) if is_uri(root) else str(Path(root) / relative)


# --- Parquet --------------------------------------------------------------------------
def read_table(
    where: Location | str | os.PathLike[str],
    columns: list[str] | None = None,
    filters: list[tuple[str, str, Any]] | None = None,
) -> pa.Table:
    """A Parquet file; ``filters`` skip row groups by their statistics (one shard of a
    compacted partition is read without reading the rest)."""
    loc = location(where)
    return pq.read_table(loc.path, columns=columns, filesystem=loc.fs, filters=filters)


def read_schema(where: Location | str | os.PathLike[str]) -> pa.Schema:
    loc = location(where)
    with loc.fs.open_input_file(loc.path) as f:
        return pq.read_schema(f)


def write_table(
    table: pa.Table,
    where: Location | str | os.PathLike[str],
    metadata: dict[bytes, bytes] | None = None,
) -> None:
    """Parquet (zstd) written whole or not at all; ``metadata`` joins the schema's."""
    if metadata:
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata})
    with parquet_writer(location(where), table.schema) as writer:
        writer.write_table(table, row_group_size=ROW_GROUP)


ROW_GROUP = 8192  # rows per Parquet row group: large enough to scan fast, small enough to skip


@contextlib.contextmanager
def parquet_writer(loc: Location, schema: pa.Schema) -> Iterator[pq.ParquetWriter]:
    """A Parquet writer whose file appears only if the block ends without an error.

    The file is written to a local temporary file first: renamed into place
    locally, uploaded whole to an object store (a killed upload is never published;
    a streamed one would publish a truncated file on any error, since closing an S3
    stream completes it).
    """
    folder = loc.local_path.parent if loc.is_local else None
    with writing(loc):  # a full disk, a read-only folder: one line naming the file
        if folder is not None:
            folder.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(prefix=f".{loc.name}.", suffix=".tmp", dir=folder)
        os.close(fd)
    tmp = Path(name)
    try:
        with writing(loc), pq.ParquetWriter(tmp, schema, compression="zstd") as writer:
            yield writer
        if loc.is_local:
            with writing(loc):
                os.replace(tmp, loc.local_path)
        else:
            try:
                pafs.copy_files(str(tmp), loc.path, destination_filesystem=loc.fs)
            except OSError as exc:
                raise StorageError(
                    f"{loc.uri}: cannot write ({exc}); check the bucket exists and that "
                    "AWS_ENDPOINT_URL / AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY allow writing"
                ) from None
    finally:
        tmp.unlink(missing_ok=True)
