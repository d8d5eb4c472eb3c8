"""Fetching the catalog's datasets and pretrained generators without leaving broken files behind.

The rules a user can rely on:

- A file downloads to ``<file>.part`` and is renamed to ``<file>`` only once complete: its size
  matches the server's Content-Length and its SHA-256 matches the hash listed in the catalog or
  recorded in ``<folder>/.translate-checksums.json`` by an earlier download of the same file.
- After any failure the only thing left behind is that ``.part`` file, which the next run resumes
  with an HTTP Range request (starting again when the server ignores the range).
- An archive extracts into a hidden folder next to the target, refusing members that would land
  outside it, and is renamed to ``<data dir>/<name>`` only once it has the expected layout; so a
  folder under its final name is always complete. The archive itself is deleted afterwards.
- Every failure is a `DownloadError` with a one-line message.

The default host can be replaced by a mirror: ``mirror=`` or the ``TRANSLATE_MIRROR`` variable.
"""

from __future__ import annotations

import errno
import gzip
import hashlib
import http.client
import json
import logging
import os
import shlex
import shutil
import stat
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from contextlib import closing, contextmanager
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import IO, Callable, Dict, Generator, Iterator, Optional, Tuple, Union

from tqdm import tqdm

from translate.data.configs import DataConfig, ImageDataConfig, MNISTDataConfig
from translate.data.mnist import ensure_mnist
from translate.errors import DatasetMissingError, DownloadError
from translate.files import folders_removed_on_failure
from translate.hub.catalog import DATASETS, DEFAULT_BASE_URL, DatasetEntry, Entry, ModelEntry, find_dataset, find_model, format_size
from translate.version import __version__

log = logging.getLogger(__name__)

PathLike = Union[str, "os.PathLike[str]"]

CHECKSUM_FILE = ".translate-checksums.json"
MODEL_FILE = "latest_net_G.pth"
MIRROR_ENV = "TRANSLATE_MIRROR"
DATA_DIR_ENV = "TRANSLATE_DATA_DIR"
DEFAULT_TIMEOUT_S = 30.0
ATTEMPTS = 3

_CHUNK = 1 << 16
_USER_AGENT = f"translate-data/{__version__}"
# What a damaged archive raises while being read. gzip.BadGzipFile is an OSError, so it must be
# told apart from disk errors before them.
_CORRUPT = (zipfile.BadZipFile, tarfile.TarError, gzip.BadGzipFile, EOFError, zlib.error)


def default_data_dir() -> Path:
    """``$TRANSLATE_DATA_DIR``, else ``./data``: where datasets live and training reads them."""
    return Path(os.environ.get(DATA_DIR_ENV) or "data")


def resolve_base_url(mirror: Optional[str] = None) -> str:
    """The base URL to download from: ``mirror``, else ``$TRANSLATE_MIRROR``, else the authors' host."""
    base = mirror or os.environ.get(MIRROR_ENV) or DEFAULT_BASE_URL
    parts = urllib.parse.urlsplit(base)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise DownloadError(
            f"mirror '{base}' is not an http(s) base URL; use one such as https://mirror.example.org (set by --mirror or {MIRROR_ENV})"
        )
    return base.rstrip("/")


def part_path(dest: Path) -> Path:
    """Where ``dest`` is downloaded to until it is complete."""
    return dest.with_name(dest.name + ".part")


def model_path(models_dir: PathLike, name: str) -> Path:
    return Path(models_dir) / name / MODEL_FILE


def _model_part(models_dir: PathLike, name: str) -> Path:
    # Beside the model's folder, so that the folder only appears with a complete file in it.
    return Path(models_dir) / f"{name}.pth.part"


def dataset_state(entry: DatasetEntry, data_dir: PathLike) -> str:
    """A few words on whether ``entry`` is on disk under ``data_dir``, for listings."""
    target = Path(data_dir) / entry.name
    if target.exists():
        missing = entry.layout.missing(target)
        return f"incomplete (no {', '.join(missing)})" if missing else "yes"
    return _absent_state(part_path(Path(data_dir) / f"{entry.name}{entry.suffix}"))


def model_state(entry: ModelEntry, models_dir: PathLike) -> str:
    """A few words on whether ``entry`` is on disk under ``models_dir``, for listings."""
    target = model_path(models_dir, entry.name)
    return "yes" if target.is_file() else _absent_state(_model_part(models_dir, entry.name))


def _absent_state(part: Path) -> str:
    return "partial download" if part.exists() else "no"


def download_dataset(
    name: str,
    data_dir: PathLike,
    *,
    mirror: Optional[str] = None,
    force: bool = False,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> Path:
    """Fetch and extract the catalog dataset ``name`` to ``<data_dir>/<name>``; returns that folder.

    A complete copy already there is returned as is unless ``force``; an incomplete one is an
    error unless ``force``, which replaces it only once the new copy is complete.
    """
    entry = find_dataset(name)
    data_dir = Path(data_dir)
    target = data_dir / entry.name
    if not force and (target.exists() or target.is_symlink()):
        missing = entry.layout.missing(target)
        if not missing:
            return target
        raise DownloadError(f"{target} exists but lacks {', '.join(missing)}; move it away, or pass --force to replace it")
    with folders_removed_on_failure(data_dir):
        return _download_dataset(entry, data_dir, target, mirror, timeout)


def _download_dataset(entry: DatasetEntry, data_dir: Path, target: Path, mirror: Optional[str], timeout: float) -> Path:
    with _disk_errors("creating", data_dir):
        data_dir.mkdir(parents=True, exist_ok=True)
        # Extraction folders of a process that was killed: never a complete dataset.
        for stale in data_dir.glob(f".{entry.name}.extract-*"):
            shutil.rmtree(stale, ignore_errors=True)
    url = entry.url(resolve_base_url(mirror))
    archive = data_dir / f"{entry.name}{entry.suffix}"
    store = data_dir / CHECKSUM_FILE
    again = f"translate-data download {entry.name} --data-dir {shlex.quote(str(data_dir))}"
    digest = _download_verified(entry, url, part_path(archive), archive, store, timeout, again)
    try:
        log.info("extracting %s into %s...", archive.name, target)
        _extract_into_place(entry, archive, target)
    finally:
        archive.unlink(missing_ok=True)
    _record_checksum(store, entry.key, digest)
    return target


def download_model(
    name: str,
    dest_dir: PathLike,
    *,
    mirror: Optional[str] = None,
    force: bool = False,
    timeout: float = DEFAULT_TIMEOUT_S,
) -> Path:
    """Fetch the pretrained generator ``name`` to ``<dest_dir>/<name>/latest_net_G.pth``; returns it.

    An existing file is returned as is unless ``force``. The hash is recorded in
    ``<dest_dir>/.translate-checksums.json``.
    """
    entry = find_model(name)
    dest_dir = Path(dest_dir)
    target = model_path(dest_dir, entry.name)
    if target.is_file() and not force:
        return target
    with folders_removed_on_failure(target.parent):
        with _disk_errors("creating", dest_dir):
            dest_dir.mkdir(parents=True, exist_ok=True)
        store = dest_dir / CHECKSUM_FILE
        url = entry.url(resolve_base_url(mirror))
        again = f"translate-data download-model {entry.name} --models-dir {shlex.quote(str(dest_dir))}"
        digest = _download_verified(entry, url, _model_part(dest_dir, entry.name), target, store, timeout, again)
        _record_checksum(store, entry.key, digest)
    return target


def ensure_dataset(name: str, root: PathLike, download: bool, mirror: Optional[str] = None) -> Path:
    """The folder that holds dataset ``name`` for training, fetching it first when ``download``.

    ``root`` is returned when it has the catalog layout of ``name`` (or, for a name outside the
    catalog, when it exists). Otherwise, with ``download``, the dataset is fetched into
    ``root.parent / name`` and that folder is returned; without it, `DatasetMissingError` says
    which command fetches it.
    """
    root = Path(root)
    if name not in DATASETS:
        if root.is_dir():
            return root
        if not download:
            raise DatasetMissingError(f"dataset folder {root} not found; set data.root to the folder that holds '{name}'")
    entry = find_dataset(name)
    missing = entry.layout.missing(root)
    if not missing:
        return root
    if download:
        return download_dataset(name, root.parent, mirror=mirror)
    command = f"translate-data download {name} --data-dir {shlex.quote(str(root.parent))}"
    then = "" if root.name == name else f", then set data.root={root.parent / name}"
    if root.exists():
        raise DatasetMissingError(f"dataset '{name}' at {root} lacks {', '.join(missing)}; run: {command} --force{then}")
    raise DatasetMissingError(f"dataset '{name}' not found at {root}; run: {command}{then} (or add data.download=true)")


def prepare_data(data: DataConfig) -> DataConfig:
    """``data`` with its dataset on disk, before any training starts: a catalog dataset (horse2zebra, facades,
    ...) fetched when ``data.download`` is true, its ``root`` then the folder it is in; torchvision's MNIST
    downloaded likewise; else the error names the command that fetches it. A copy: ``data`` is left as is."""
    if isinstance(data, ImageDataConfig) and data.kind in ("aligned", "unaligned") and data.name in DATASETS:
        return replace(data, root=str(ensure_dataset(data.name, data.root, data.download)))
    if isinstance(data, MNISTDataConfig) and not data.bundled:
        ensure_mnist(data.root, data.download)
    return data


def _download_verified(entry: Entry, url: str, part: Path, dest: Path, store: Path, timeout: float, again: str) -> str:
    """Download ``url`` to ``dest`` via ``part``, check its hash, return the hash. ``again`` is the
    translate-data command that fetches ``entry`` here, for the error a failed connection gives."""
    size = "" if entry.approx_mb is None else f" ({format_size(entry.approx_mb)})"
    log.info("downloading %s%s from %s...", entry.name, size, url)
    _fetch(url, part, entry.name, timeout, again)
    log.info("checking the SHA-256 of %s...", part.name)
    digest = _sha256(part)
    try:
        _check_digest(entry, digest, store, f"{dest.name} from {url}")
    except DownloadError:
        part.unlink()
        raise
    with _disk_errors("renaming", part):
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(part, dest)
    return digest


class _Interrupted(Exception):
    """The transfer ended early; whatever arrived is kept in the ``.part`` file to resume from."""


def _fetch(url: str, part: Path, desc: str, timeout: float, again: str) -> None:
    """Download ``url`` into ``part``, resuming from what it holds, retrying a cut connection."""
    reason: Optional[_Interrupted] = None
    for _ in range(ATTEMPTS):
        try:
            _fetch_once(url, part, desc, timeout, again)
            return
        except _Interrupted as exc:
            reason = exc
    have = part.stat().st_size if part.exists() else 0
    raise DownloadError(
        f"download of {url} broke off {ATTEMPTS} times ({reason}); {have} bytes are kept in {part}: run the same command again to resume"
    )


def _fetch_once(url: str, part: Path, desc: str, timeout: float, again: str) -> None:
    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": _USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as exc:
        with exc:
            if exc.code == 416 and offset:
                # Nothing left to send: either the .part is already whole, or it is stale.
                if _content_range(exc.headers.get("Content-Range"))[1] == offset:
                    return
                part.unlink()
                raise _Interrupted("the server refused to resume; starting again") from None
            hint = "; check the name, or the mirror's copy" if exc.code == 404 else ""
            raise DownloadError(f"HTTP error {exc.code} {exc.reason} for {url}{hint}") from None
    except (urllib.error.URLError, http.client.HTTPException, OSError) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        raise DownloadError(
            f"cannot download {url}: {_describe(reason)}; check the network connection, or fetch from a mirror "
            f"({again} --mirror <url>, or the environment variable {MIRROR_ENV})"
        ) from None
    with response:
        if response.status == 206:
            start, total = _content_range(response.headers.get("Content-Range"))
            if start != offset:
                part.unlink()
                raise _Interrupted(f"the server resumed at byte {start}, not {offset}; starting again")
            mode = "ab"
        else:
            offset, mode = 0, "wb"
            total = _int_or_none(response.headers.get("Content-Length"))
        received = _stream(response, part, mode, offset, total, desc)
    if total is not None and received < total:
        raise _Interrupted(f"connection closed at byte {received} of {total}")
    if total is not None and received > total:
        part.unlink()
        raise DownloadError(f"{url} sent {received} bytes, more than the {total} it announced")


def _stream(
    response: http.client.HTTPResponse,
    part: Path,
    mode: str,
    offset: int,
    total: Optional[int],
    desc: str,
) -> int:
    """Append the response body to ``part``; returns the size of ``part`` afterwards."""
    received = offset
    bar = tqdm(
        total=total,
        initial=offset,
        desc=desc,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        disable=None,
    )
    with bar, _disk_errors("writing", part), open(part, mode) as out:
        while True:
            try:
                chunk = response.read(_CHUNK)
            except (http.client.HTTPException, OSError) as exc:
                raise _Interrupted(_describe(exc)) from None
            if not chunk:
                return received
            out.write(chunk)
            received += len(chunk)
            bar.update(len(chunk))


def _content_range(value: Optional[str]) -> Tuple[Optional[int], Optional[int]]:
    """(first byte, total size) of a ``Content-Range: bytes a-b/total`` or ``bytes */total`` header."""
    if not value or not value.startswith("bytes "):
        return None, None
    span, _, total = value[len("bytes ") :].partition("/")
    return _int_or_none(span.partition("-")[0]), _int_or_none(total)


def _int_or_none(value: Optional[str]) -> Optional[int]:
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _describe(reason: object) -> str:
    if isinstance(reason, OSError) and reason.strerror:
        return reason.strerror
    return str(reason) or type(reason).__name__


def _disk_error(exc: OSError, action: str, path: Path) -> DownloadError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return DownloadError(f"disk full while {action} {path}; free some space and run the same command again")
    return DownloadError(f"{action} {path} failed: {_describe(exc)}")


@contextmanager
def _disk_errors(action: str, path: Path) -> Iterator[None]:
    """Report a file-system failure inside the block as a one-line `DownloadError`."""
    try:
        yield
    except OSError as exc:
        raise _disk_error(exc, action, path) from None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with _disk_errors("reading", path), open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _load_checksums(store: Path) -> Dict[str, str]:
    if not store.exists():
        return {}
    try:
        record = json.loads(store.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DownloadError(f"cannot read the checksum record {store} ({exc}); fix or delete it") from None
    if not isinstance(record, dict):
        raise DownloadError(f"checksum record {store} is not a JSON object; fix or delete it")
    return record


def _check_digest(entry: Entry, digest: str, store: Path, what: str) -> None:
    recorded = _load_checksums(store).get(entry.key)
    for expected, source, remedy in (
        (entry.sha256, "the catalog", "the file may have been tampered with"),
        (recorded, str(store), f"if it changed upstream on purpose, delete '{entry.key}' from that file"),
    ):
        if expected is not None and expected != digest:
            raise DownloadError(
                f"checksum mismatch for {what}: got sha256 {digest}, expected {expected} from {source}; the download was deleted ({remedy})"
            )


def _record_checksum(store: Path, key: str, digest: str) -> None:
    record = _load_checksums(store)
    record[key] = digest
    with _disk_errors("writing", store):
        fd, tmp = tempfile.mkstemp(prefix=f".{store.name}.", dir=store.parent)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(record, f, indent=2, sort_keys=True)
                f.write("\n")
            os.replace(tmp, store)
        finally:
            Path(tmp).unlink(missing_ok=True)


@dataclass
class _Member:
    """One archive entry: ``kind`` is file, dir, symlink, hardlink or special."""

    name: str
    kind: str
    link: str = ""
    reader: Optional[Callable[[], IO[bytes]]] = None


def _zip_members(archive: Path) -> Generator[_Member, None, None]:
    with zipfile.ZipFile(archive) as zf:
        for info in zf.infolist():
            if stat.S_ISLNK(info.external_attr >> 16):
                yield _Member(info.filename, "symlink", link=zf.read(info).decode("utf-8"))
            elif info.is_dir():
                yield _Member(info.filename, "dir")
            else:
                yield _Member(info.filename, "file", reader=partial(zf.open, info))


def _tar_file(tf: tarfile.TarFile, info: tarfile.TarInfo) -> IO[bytes]:
    data = tf.extractfile(info)
    assert data is not None, "a regular tar member always has data"
    return data


def _tar_members(archive: Path) -> Generator[_Member, None, None]:
    # Stream mode reads a large .tar.gz in one pass; each member is consumed before the next.
    with gzip.open(archive, "rb") as gz, tarfile.open(fileobj=gz, mode="r|") as tf:
        for info in tf:
            if info.isdir():
                yield _Member(info.name, "dir")
            elif info.isreg():
                yield _Member(info.name, "file", reader=partial(_tar_file, tf, info))
            elif info.issym():
                yield _Member(info.name, "symlink", link=info.linkname)
            elif info.islnk():
                yield _Member(info.name, "hardlink", link=info.linkname)
            else:
                yield _Member(info.name, "special")
        # tarfile takes a cut at a member boundary for the end of the archive; reading the gzip
        # stream to its end checks its length and CRC, which tells a truncated download apart.
        while gz.read(_CHUNK):
            pass


def _extract_into_place(entry: DatasetEntry, archive: Path, target: Path) -> None:
    """Extract ``archive`` next to ``target``, check the layout, then rename it to ``target``."""
    with _disk_errors("creating a folder in", target.parent):
        work = Path(tempfile.mkdtemp(prefix=f".{entry.name}.extract-", dir=target.parent))
    try:
        extracted = work / "archive"
        extracted.mkdir()
        members = _zip_members(archive) if entry.suffix == ".zip" else _tar_members(archive)
        try:
            # A large archive takes minutes to extract; the bar counts files (shown on a terminal only).
            with closing(members), tqdm(desc=f"extracting {entry.name}", unit=" files", disable=None) as bar:
                for member in members:
                    _place(member, extracted, archive.name)
                    bar.update()
        except _CORRUPT as exc:
            raise DownloadError(
                f"archive {archive.name} is truncated or corrupt ({_describe(exc)}); nothing was "
                "installed: run the same command again, or use another mirror"
            ) from None
        except OSError as exc:
            raise _disk_error(exc, "extracting into", target.parent) from None
        root = _content_root(extracted, entry)
        missing = entry.layout.missing(root)
        if missing:
            raise DownloadError(
                f"archive {archive.name} lacks {', '.join(missing)} (expected {entry.layout.describe()}); nothing was installed"
            )
        with _disk_errors("moving into place", target):
            if target.exists() or target.is_symlink():
                os.rename(target, work / "previous")
            os.rename(root, target)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _content_root(extracted: Path, entry: DatasetEntry) -> Path:
    """The archive's single top-level folder when it has one (and it is not a split), else itself."""
    children = list(extracted.iterdir())
    if len(children) == 1:
        only = children[0]
        if only.is_dir() and not only.is_symlink() and only.name not in entry.layout.folders:
            return only
    return extracted


def _place(member: _Member, root: Path, archive: str) -> None:
    """Write ``member`` below ``root``, refusing anything that would end up outside it."""

    def refuse(reason: str) -> DownloadError:
        return DownloadError(f"refusing archive member '{member.name}' in {archive}: {reason}; nothing was installed")

    parts = _relative_parts(member.name)
    if parts is None:
        raise refuse("it has an absolute path")
    if ".." in parts:
        raise refuse("its path leads outside the dataset folder with '..'")
    if not parts or parts[0] == "__MACOSX":
        return
    dest = root.joinpath(*parts)
    # realpath follows links that earlier members created, which a purely textual check would miss.
    if not _inside(root, os.path.realpath(dest)):
        raise refuse("it would be written through a link that leads outside the dataset folder")
    if member.kind == "dir":
        dest.mkdir(parents=True, exist_ok=True)
        return
    if member.kind == "special":
        raise refuse("it is a device or fifo, not a file")
    dest.parent.mkdir(parents=True, exist_ok=True)
    if member.kind == "symlink":
        if _relative_parts(member.link) is None or not _inside(root, os.path.realpath(dest.parent / member.link)):
            raise refuse(f"it is a symbolic link to '{member.link}', outside the dataset folder")
        os.symlink(member.link, dest)
    elif member.kind == "hardlink":
        source_parts = _relative_parts(member.link)
        source = root.joinpath(*source_parts) if source_parts and ".." not in source_parts else root
        if source == root or not _inside(root, os.path.realpath(source)):
            raise refuse(f"it is a hard link to '{member.link}', outside the dataset folder")
        if not source.is_file():
            raise refuse(f"it is a hard link to '{member.link}', which the archive does not hold")
        shutil.copyfile(source, dest)
    elif member.reader is not None:
        with member.reader() as src, open(dest, "wb") as out:
            shutil.copyfileobj(src, out)


def _relative_parts(name: str) -> Optional[Tuple[str, ...]]:
    """The path components of archive name ``name`` without ``.``; None when it is absolute."""
    if name.startswith(("/", "\\")) or PureWindowsPath(name).drive:
        return None
    return tuple(part for part in PurePosixPath(name).parts if part != ".")


def _inside(root: Path, path: str) -> bool:
    real_root = os.path.realpath(root)
    return os.path.commonpath([real_root, path]) == real_root
