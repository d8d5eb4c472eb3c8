"""translate-data against a local HTTP server: downloads, resume, checksums, unsafe archives, errors."""

from __future__ import annotations

import errno
import hashlib
import io
import json
import shutil
import socket
import tarfile
import threading
import zipfile
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Tuple

import pytest

from translate.cli.data import main
from translate.errors import DatasetMissingError, DownloadError
from translate.hub import download
from translate.hub.catalog import DATASETS, MODELS
from translate.hub.download import CHECKSUM_FILE, download_dataset, download_model, ensure_dataset

UNALIGNED_FILES = {
    f"horse2zebra/{split}/{i}.jpg": f"{split} image {i}".encode() * 50 for split in ("trainA", "trainB", "testA", "testB") for i in range(3)
}
ALIGNED_FILES = {f"facades/{split}/1.jpg": split.encode() * 100 for split in ("train", "val", "test")}
H2Z_PATH = "/cyclegan/datasets/horse2zebra.zip"


@dataclass
class Server:
    """What the test server serves, how it misbehaves, and the requests it saw."""

    url: str = ""
    files: Dict[str, bytes] = field(default_factory=dict)
    cut_after: Optional[int] = None  # send only this many body bytes, then drop the connection
    cuts_left: int = 0
    ignore_range: bool = False
    requests: List[Tuple[str, Optional[str]]] = field(default_factory=list)


def _handler(server: Server) -> type:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            range_header = self.headers.get("Range")
            server.requests.append((self.path, range_header))
            data = server.files.get(self.path)
            if data is None:
                self.send_error(404)
                return
            start = 0
            if range_header and not server.ignore_range:
                start = int(range_header.removeprefix("bytes=").rstrip("-"))
                if start >= len(data):
                    self.send_response(416)
                    self.send_header("Content-Range", f"bytes */{len(data)}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
            else:
                self.send_response(200)
            body = data[start:]
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if server.cuts_left and server.cut_after is not None:
                server.cuts_left -= 1
                body = body[: server.cut_after]
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    return Handler


@pytest.fixture
def server() -> Iterator[Server]:
    state = Server()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield state
    httpd.shutdown()
    httpd.server_close()
    thread.join()


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(download.MIRROR_ENV, raising=False)
    monkeypatch.delenv(download.DATA_DIR_ENV, raising=False)


def make_zip(files: Dict[str, bytes], symlinks: Optional[Dict[str, str]] = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
        for name, target in (symlinks or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = 0o120777 << 16
            zf.writestr(info, target)
    return buf.getvalue()


def make_tar(
    files: Dict[str, bytes],
    symlinks: Optional[Dict[str, str]] = None,
    hardlinks: Optional[Dict[str, str]] = None,
) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for links, kind in ((symlinks, tarfile.SYMTYPE), (hardlinks, tarfile.LNKTYPE)):
            for name, target in (links or {}).items():
                info = tarfile.TarInfo(name)
                info.type, info.linkname = kind, target
                tf.addfile(info)
    return buf.getvalue()


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> Tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def listed(table: str, name: str) -> List[str]:
    """The cells after ``name`` in its row of a ``translate-data list`` table."""
    (row,) = [line.split()[1:] for line in table.splitlines() if line.split()[:1] == [name]]
    return row


def leftovers(data_dir: Path) -> List[str]:
    """Everything under data_dir except the checksum record: what a failure must not leave."""
    if not data_dir.exists():
        return []
    return sorted(p.name for p in data_dir.iterdir() if p.name != CHECKSUM_FILE)


def test_catalog_urls_follow_the_reference_layout() -> None:
    assert DATASETS["horse2zebra"].url() == "http://efrosgans.eecs.berkeley.edu/cyclegan/datasets/horse2zebra.zip"
    assert DATASETS["cyclegan_facades"].url("http://m/") == "http://m/cyclegan/datasets/facades.zip"
    assert DATASETS["facades"].url("http://m") == "http://m/pix2pix/datasets/facades.tar.gz"
    assert DATASETS["maps"].layout.name == "aligned" and DATASETS["cyclegan_maps"].layout.name == "unaligned"
    assert MODELS["sat2map"].url("http://m") == "http://m/cyclegan/pretrained_models/sat2map.pth"
    assert MODELS["pix2pix_sat2map"].url("http://m") == "http://m/pix2pix/models-pytorch/sat2map.pth"
    assert len(DATASETS) == 19 and len(MODELS) == 23
    assert all(entry.sha256 is None for entry in [*DATASETS.values(), *MODELS.values()])


def test_download_list_and_checksum(server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    archive = make_zip(UNALIGNED_FILES)
    server.files[H2Z_PATH] = archive
    data = tmp_path / "data"
    code, out, err = run_cli(capsys, "download", "horse2zebra", "--data-dir", str(data), "--mirror", server.url)
    assert code == 0 and f"ready at {data / 'horse2zebra'}" in out
    # Each phase says what it does as it starts (a large dataset takes minutes); bars only on a terminal.
    assert err.splitlines() == [
        f"translate-data: downloading horse2zebra (~110 MB) from {server.url}{H2Z_PATH}...",
        "translate-data: checking the SHA-256 of horse2zebra.zip.part...",
        f"translate-data: extracting horse2zebra.zip into {data / 'horse2zebra'}...",
    ]
    for name, content in UNALIGNED_FILES.items():
        assert (data / name).read_bytes() == content  # top-level folder stripped exactly once
    assert leftovers(data) == ["horse2zebra"]  # no archive, .part or extraction folder
    assert json.loads((data / CHECKSUM_FILE).read_text()) == {H2Z_PATH.lstrip("/"): sha256(archive)}

    code, out, _ = run_cli(capsys, "list", "--data-dir", str(data))
    datasets, models = out.split("Pretrained generators")
    assert code == 0
    assert listed(datasets, "horse2zebra") == ["cyclegan", "unaligned", "~110", "MB", "yes"]
    assert listed(datasets, "apple2orange")[-1] == "no"
    assert listed(models, "horse2zebra") == ["cyclegan", "~46", "MB", "no"]

    code, out, _ = run_cli(capsys, "download", "horse2zebra", "--data-dir", str(data), "--mirror", server.url)
    assert code == 0 and "already at" in out and len(server.requests) == 1


def test_aligned_tar_gz_under_its_local_name(server: Server, tmp_path: Path) -> None:
    server.files["/pix2pix/datasets/facades.tar.gz"] = make_tar(
        ALIGNED_FILES,
        symlinks={"facades/train/2.jpg": "../val/1.jpg"},
        hardlinks={"facades/test/2.jpg": "facades/val/1.jpg"},
    )
    server.files["/cyclegan/datasets/facades.zip"] = make_zip({k.replace("horse2zebra", "facades"): v for k, v in UNALIGNED_FILES.items()})
    aligned = download_dataset("facades", tmp_path, mirror=server.url)
    unaligned = download_dataset("cyclegan_facades", tmp_path, mirror=server.url)
    for name in ("val/1.jpg", "train/2.jpg", "test/2.jpg"):  # links inside the dataset are kept
        assert (aligned / name).read_bytes() == ALIGNED_FILES["facades/val/1.jpg"]
    assert aligned == tmp_path / "facades" and unaligned == tmp_path / "cyclegan_facades"
    assert (unaligned / "testB" / "2.jpg").is_file()


def test_resume_after_cut_connection(server: Server, tmp_path: Path) -> None:
    archive = make_zip(UNALIGNED_FILES)
    server.files[H2Z_PATH] = archive
    server.cut_after, server.cuts_left = 100, 1
    download_dataset("horse2zebra", tmp_path, mirror=server.url)
    assert server.requests == [(H2Z_PATH, None), (H2Z_PATH, "bytes=100-")]
    assert json.loads((tmp_path / CHECKSUM_FILE).read_text())[H2Z_PATH.lstrip("/")] == sha256(archive)


def test_resume_across_runs_and_server_ignoring_range(server: Server, tmp_path: Path) -> None:
    archive = make_zip(UNALIGNED_FILES)
    server.files[H2Z_PATH] = archive
    server.cut_after, server.cuts_left = 100, download.ATTEMPTS
    with pytest.raises(DownloadError, match=r"broke off .* 300 bytes are kept in .*horse2zebra\.zip\.part.*resume"):
        download_dataset("horse2zebra", tmp_path, mirror=server.url)
    part = tmp_path / "horse2zebra.zip.part"
    assert part.read_bytes() == archive[:300] and leftovers(tmp_path) == ["horse2zebra.zip.part"]

    server.requests.clear()
    server.ignore_range = True  # the whole file comes back with 200: the .part must be rewritten
    download_dataset("horse2zebra", tmp_path, mirror=server.url)
    assert server.requests == [(H2Z_PATH, "bytes=300-")]
    assert json.loads((tmp_path / CHECKSUM_FILE).read_text())[H2Z_PATH.lstrip("/")] == sha256(archive)
    assert leftovers(tmp_path) == ["horse2zebra"]


@pytest.mark.parametrize("extra", [b"", b"stale"], ids=["complete", "longer than the file"])
def test_leftover_part_file_at_or_past_the_end(server: Server, tmp_path: Path, extra: bytes) -> None:
    archive = make_zip(UNALIGNED_FILES)
    server.files[H2Z_PATH] = archive
    (tmp_path / "horse2zebra.zip.part").write_bytes(archive + extra)
    download_dataset("horse2zebra", tmp_path, mirror=server.url)
    range_request = (H2Z_PATH, f"bytes={len(archive + extra)}-")
    assert server.requests == ([range_request] if not extra else [range_request, (H2Z_PATH, None)])
    assert json.loads((tmp_path / CHECKSUM_FILE).read_text())[H2Z_PATH.lstrip("/")] == sha256(archive)
    assert leftovers(tmp_path) == ["horse2zebra"]


def test_checksum_mismatch_against_recorded_hash(server: Server, tmp_path: Path) -> None:
    first = make_zip(UNALIGNED_FILES)
    server.files[H2Z_PATH] = first
    download_dataset("horse2zebra", tmp_path, mirror=server.url)
    second = make_zip({**UNALIGNED_FILES, "horse2zebra/trainA/extra.jpg": b"changed"})
    server.files[H2Z_PATH] = second
    with pytest.raises(DownloadError) as info:
        download_dataset("horse2zebra", tmp_path, mirror=server.url, force=True)
    message = str(info.value)
    assert "horse2zebra.zip" in message and sha256(first) in message and sha256(second) in message
    assert not (tmp_path / "horse2zebra" / "trainA" / "extra.jpg").exists()  # old copy untouched
    assert leftovers(tmp_path) == ["horse2zebra"]


def _cut(archive: bytes) -> bytes:
    return archive[: len(archive) * 2 // 3]


def _bad_gzip_crc(archive: bytes) -> bytes:
    # the gzip trailer ends with CRC32 and size: all tar members still read fine
    return archive[:-8] + bytes(b ^ 0xFF for b in archive[-8:-4]) + archive[-4:]


@pytest.mark.parametrize(
    "fmt, damage",
    [("zip", _cut), ("tar", _cut), ("tar", _bad_gzip_crc)],
    ids=["zip-cut", "tar-cut", "tar-crc"],
)
def test_truncated_archive(server: Server, tmp_path: Path, fmt: str, damage: Callable[[bytes], bytes]) -> None:
    name, path, archive = (
        ("horse2zebra", H2Z_PATH, make_zip(UNALIGNED_FILES))
        if fmt == "zip"
        else ("facades", "/pix2pix/datasets/facades.tar.gz", make_tar(ALIGNED_FILES))
    )
    server.files[path] = damage(archive)
    with pytest.raises(DownloadError, match="truncated or corrupt.*nothing was installed"):
        download_dataset(name, tmp_path, mirror=server.url)
    assert leftovers(tmp_path) == []
    assert not (tmp_path / CHECKSUM_FILE).exists()


# name -> (archive format, extra files, symlinks, hard links, the member that must be refused);
# "{top}" is the archive's top-level folder, "{abs}" an absolute path in the test's folder.
UNSAFE = {
    "zip dot-dot": ("zip", {"{top}/../../evil.txt": b"x"}, {}, {}, "{top}/../../evil.txt"),
    "zip absolute": ("zip", {"{abs}/evil.txt": b"x"}, {}, {}, "{abs}/evil.txt"),
    "tar dot-dot": ("tar", {"../evil.txt": b"x"}, {}, {}, "../evil.txt"),
    "tar absolute": ("tar", {"{abs}/evil.txt": b"x"}, {}, {}, "{abs}/evil.txt"),
    "tar symlink out": ("tar", {}, {"{top}/train/out": "../../../.."}, {}, "{top}/train/out"),
    "zip symlink out": ("zip", {}, {"{top}/out": "/"}, {}, "{top}/out"),
    # each link looks harmless on its own; together they lead one level above the target
    "tar symlink chain": ("tar", {}, {"{top}/here": ".", "{top}/up": "here/../.."}, {}, "{top}/up"),
    "tar hardlink out": ("tar", {}, {}, {"{top}/pw": "/etc/passwd"}, "{top}/pw"),
}


@pytest.mark.parametrize("case", list(UNSAFE))
def test_unsafe_members_are_refused(server: Server, tmp_path: Path, case: str) -> None:
    fmt, extra, symlinks, hardlinks, bad = UNSAFE[case]
    name, good, path = (
        ("horse2zebra", UNALIGNED_FILES, H2Z_PATH) if fmt == "zip" else ("facades", ALIGNED_FILES, "/pix2pix/datasets/facades.tar.gz")
    )

    def top(d: Dict[str, object]) -> dict:
        return {k.format(top=name, abs=tmp_path): v for k, v in d.items()}

    # the unsafe members come after the good ones, so a partial dataset exists when they are met
    make = make_zip if fmt == "zip" else make_tar
    links = dict(symlinks=top(symlinks)) if fmt == "zip" else dict(symlinks=top(symlinks), hardlinks=top(hardlinks))
    server.files[path] = make({**good, **top(extra)}, **links)
    data = tmp_path / "deep" / "data"
    with pytest.raises(DownloadError) as info:
        download_dataset(name, data, mirror=server.url)
    assert f"refusing archive member '{bad.format(top=name, abs=tmp_path)}'" in str(info.value)
    assert leftovers(data) == []
    # the folders the download made are gone again: a failed download leaves no empty data/ behind
    assert sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*")) == []


def test_http_404(server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run_cli(capsys, "download", "apple2orange", "--data-dir", str(tmp_path), "--mirror", server.url)
    url = f"{server.url}/cyclegan/datasets/apple2orange.zip"
    assert code == 2 and out == ""
    assert err.splitlines() == [
        f"translate-data: downloading apple2orange (~75 MB) from {url}...",
        f"translate-data: error: HTTP error 404 Not Found for {url}; check the name, or the mirror's copy",
    ]
    assert leftovers(tmp_path) == []


def test_connection_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv(download.MIRROR_ENV, f"http://127.0.0.1:{port}")
    code, _, err = run_cli(capsys, "download-model", "horse2zebra", "--models-dir", str(tmp_path))
    assert code == 2 and "Traceback" not in err
    started, error = err.splitlines()
    assert started.startswith("translate-data: downloading horse2zebra")
    assert error.startswith(f"translate-data: error: cannot download http://127.0.0.1:{port}/cyclegan/pretrained_models/")
    # The command it suggests is the one that fetches this generator, into the same folder, from a mirror.
    assert "refused" in error and f"(translate-data download-model horse2zebra --models-dir {tmp_path} --mirror <url>," in error
    assert list(tmp_path.iterdir()) == []


def test_connection_refused_for_a_dataset_suggests_its_own_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    data = tmp_path / "my data"
    code, _, err = run_cli(capsys, "download", "facades", "--data-dir", str(data), "--mirror", f"http://127.0.0.1:{port}")
    assert code == 2 and f"(translate-data download facades --data-dir '{data}' --mirror <url>," in err.splitlines()[-1]
    assert leftovers(data) == []


def test_disk_full_while_extracting(server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server.files[H2Z_PATH] = make_zip(UNALIGNED_FILES)

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(shutil, "copyfileobj", full)
    with pytest.raises(DownloadError, match=r"^disk full while extracting into .*; free some space"):
        download_dataset("horse2zebra", tmp_path, mirror=server.url)
    assert leftovers(tmp_path) == []


def test_ensure_dataset(server: Server, tmp_path: Path) -> None:
    server.files[H2Z_PATH] = make_zip(UNALIGNED_FILES)
    root = tmp_path / "data" / "horse2zebra"
    with pytest.raises(DatasetMissingError) as info:
        ensure_dataset("horse2zebra", root, download=False)
    assert str(info.value) == (
        f"dataset 'horse2zebra' not found at {root}; run: translate-data download horse2zebra "
        f"--data-dir {root.parent} (or add data.download=true)"
    )
    assert server.requests == []
    assert ensure_dataset("horse2zebra", root, download=True, mirror=server.url) == root
    assert (root / "testB" / "0.jpg").is_file() and len(server.requests) == 1
    assert ensure_dataset("horse2zebra", root, download=False) == root

    shutil.rmtree(root / "testB")
    with pytest.raises(DatasetMissingError, match=r"lacks testB; run: translate-data download horse2zebra .* --force"):
        ensure_dataset("horse2zebra", root, download=False)


def test_download_model(server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    weights = b"not really a state_dict" * 100
    server.files["/pix2pix/models-pytorch/sat2map.pth"] = weights
    models = tmp_path / "models"
    server.cut_after, server.cuts_left = 10, download.ATTEMPTS
    with pytest.raises(DownloadError, match="run the same command again to resume"):
        download_model("pix2pix_sat2map", models, mirror=server.url)
    assert sorted(p.name for p in models.iterdir()) == ["pix2pix_sat2map.pth.part"]
    code, out, _ = run_cli(capsys, "list", "--data-dir", str(tmp_path), "--models-dir", str(models))
    assert listed(out, "pix2pix_sat2map")[-2:] == ["partial", "download"]
    code, out, _ = run_cli(capsys, "download-model", "pix2pix_sat2map", "--models-dir", str(models), "--mirror", server.url)
    target = models / "pix2pix_sat2map" / "latest_net_G.pth"
    assert server.requests[-1] == ("/pix2pix/models-pytorch/sat2map.pth", "bytes=30-")
    assert code == 0 and f"saved {target}" in out and f"checkpoint={target} model=pix2pix" in out
    assert target.read_bytes() == weights
    assert sorted(p.name for p in target.parent.iterdir()) == ["latest_net_G.pth"]
    assert json.loads((models / CHECKSUM_FILE).read_text()) == {"pix2pix/models-pytorch/sat2map.pth": sha256(weights)}
    code, out, _ = run_cli(capsys, "list", "--data-dir", str(tmp_path), "--models-dir", str(models))
    assert listed(out, "pix2pix_sat2map")[-1] == "yes" and listed(out, "sat2map")[-1] == "no"

    server.files["/pix2pix/models-pytorch/sat2map.pth"] = b"tampered"
    assert download_model("pix2pix_sat2map", models, mirror=server.url) == target  # on disk: no request
    with pytest.raises(DownloadError, match="checksum mismatch"):
        download_model("pix2pix_sat2map", models, mirror=server.url, force=True)
    assert target.read_bytes() == weights
    assert sorted(p.name for p in target.parent.iterdir()) == ["latest_net_G.pth"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["download", "hores2zebra"], "unknown dataset 'hores2zebra'; did you mean horse2zebra?"),
        (
            ["download-model", "hores2zebra"],
            "unknown pretrained generator 'hores2zebra'; did you mean horse2zebra?",
        ),
        (
            ["download", "style_monet"],
            "'style_monet' is not a dataset but a pretrained generator; run: translate-data download-model style_monet",
        ),
        (["download", "cityscapes"], "dataset 'cityscapes' cannot be downloaded: its licence"),
        (["download", "mini", "--mirror", "ftp://host"], "mirror 'ftp://host' is not an http(s) base URL"),
    ],
)
def test_cli_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: List[str], message: str) -> None:
    code, out, err = run_cli(capsys, *argv, "--data-dir", str(tmp_path))
    assert code == 2 and out == ""
    assert err.startswith(f"translate-data: error: {message}") and err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_data_dir_and_mirror_from_environment(
    server: Server, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    server.files["/cyclegan/datasets/mini.zip"] = make_zip({k.replace("horse2zebra", "mini"): v for k, v in UNALIGNED_FILES.items()})
    monkeypatch.setenv(download.MIRROR_ENV, server.url)
    monkeypatch.setenv(download.DATA_DIR_ENV, str(tmp_path / "env_data"))
    code, out, _ = run_cli(capsys, "download", "mini")
    assert code == 0 and (tmp_path / "env_data" / "mini" / "trainA" / "0.jpg").is_file()
