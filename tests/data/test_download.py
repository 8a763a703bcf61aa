"""The PTB-XL downloader against a local HTTP server: verify, resume, refuse, and fail offline."""

from __future__ import annotations

import functools
import hashlib
import io
import json
import shutil
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest
from click.testing import CliRunner

from bell_edge.cli import main
from bell_edge.data.download import DownloadError, download


class _RangeHandler(SimpleHTTPRequestHandler):
    """SimpleHTTPRequestHandler plus `Range: bytes=N-` (what a resumed download sends)."""

    def send_head(self):
        spec = self.headers.get("Range")
        path = self.translate_path(self.path)
        if not spec or not spec.startswith("bytes="):
            return super().send_head()
        with open(path, "rb") as f:
            data = f.read()
        start = int(spec[len("bytes=") :].rstrip("-"))
        if start >= len(data):
            self.send_error(416)
            return None
        self.send_response(206)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        return io.BytesIO(data[start:])

    def log_message(self, *args):
        pass


@pytest.fixture
def release(ptbxl100, tmp_path):
    """A tiny release in PhysioNet's layout (two real records), served over HTTP."""
    root = tmp_path / "server"
    files = ["labels.csv"] + [
        f"records100/00000/{p.name}"
        for p in sorted((ptbxl100 / "records100" / "00000").iterdir())[:4]
    ]
    for name in files:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ptbxl100 / name, root / name)
    (root / "records500").mkdir()
    (root / "records500" / "x.dat").write_bytes(b"500 Hz signal")
    sums = [f"{hashlib.sha256((root / n).read_bytes()).hexdigest()}  {n}" for n in files]
    sums.append(f"{hashlib.sha256(b'500 Hz signal').hexdigest()}  records500/x.dat")
    (root / "SHA256SUMS.txt").write_text("\n".join(sums) + "\n")
    handler = functools.partial(_RangeHandler, directory=str(root))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}/", files
    server.shutdown()


def test_downloads_verifies_and_skips_verified_files(release, tmp_path):
    root, url, files = release
    out = tmp_path / "ptbxl"
    counts = download(out, "100", base_url=url, workers=2)
    assert counts == {"files": len(files), "downloaded": len(files), "verified_before": 0}
    for name in files:
        assert (out / name).read_bytes() == (root / name).read_bytes()
    assert not (out / "records500").exists()  # 100 Hz only
    again = download(out, "100", base_url=url)
    assert again["downloaded"] == 0 and again["verified_before"] == len(files)


def test_resumes_a_partial_file_and_replaces_a_corrupt_one(release, tmp_path):
    root, url, files = release
    out = tmp_path / "ptbxl"
    dat = files[-1] if files[-1].endswith(".dat") else files[-2]
    whole = (root / dat).read_bytes()
    (out / dat).parent.mkdir(parents=True)
    (out / (dat + ".part")).write_bytes(whole[: len(whole) // 2])
    (out / files[0]).write_text("tampered")
    counts = download(out, "100", base_url=url)
    assert counts["downloaded"] == len(files)
    assert (out / dat).read_bytes() == whole
    assert (out / files[0]).read_bytes() == (root / files[0]).read_bytes()
    assert not list(out.rglob("*.part"))


def test_a_file_that_does_not_match_its_checksum_is_refused(release, tmp_path):
    root, url, files = release
    (root / files[0]).write_text("changed on the server")
    with pytest.raises(DownloadError, match="sha256 does not match"):
        download(tmp_path / "ptbxl", "100", base_url=url)
    assert not (tmp_path / "ptbxl" / files[0]).exists()


def test_offline_fails_at_once_with_one_line(tmp_path):
    args = ["data", "download", "ptbxl", "--out", str(tmp_path / "p")]
    result = CliRunner().invoke(main, [*args, "--mirror", "http://127.0.0.1:9/"])
    assert result.exit_code == 1
    lines = result.output.strip().splitlines()
    assert lines[-1].startswith("failed: cannot reach http://127.0.0.1:9/")
    assert "Traceback" not in result.output


def test_a_bad_mirror_or_out_is_one_line_and_a_mirror_needs_no_trailing_slash(release, tmp_path):
    root, url, files = release
    args = ["data", "download", "ptbxl", "--out"]
    bad = CliRunner().invoke(main, [*args, str(tmp_path / "p"), "--mirror", "notaurl"])
    assert bad.exit_code == 2 and "--mirror notaurl: not an http(s) or file URL" in bad.stderr
    (tmp_path / "afile").write_text("")
    on_file = CliRunner().invoke(main, [*args, str(tmp_path / "afile"), "--mirror", url])
    assert on_file.exit_code == 2 and "afile: is a file, not a folder" in on_file.stderr
    bare = CliRunner().invoke(main, [*args, str(tmp_path / "q"), "--mirror", url.rstrip("/")])
    assert bare.exit_code == 0, bare.output
    assert (tmp_path / "q" / files[1]).read_bytes() == (root / files[1]).read_bytes()


@pytest.mark.parametrize(
    "name", ["records100/../../escaped.dat", "records100/00000/../../../escaped.dat"]
)
def test_a_name_outside_out_is_refused(release, tmp_path, name):
    # The server's SHA256SUMS names a file that would land beside --out, not in it.
    root, url, files = release
    (root / "escaped.dat").write_bytes(b"payload")
    sums = root / "SHA256SUMS.txt"
    digest = hashlib.sha256(b"payload").hexdigest()
    sums.write_text(sums.read_text() + f"{digest}  {name}\n")
    out = tmp_path / "deep" / "ptbxl"
    result = CliRunner().invoke(main, ["data", "download", "ptbxl", "--out", str(out),
                                       "--mirror", url])  # fmt: skip
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert "outside" in result.output and len(result.output.strip().splitlines()) == 1
    assert [p for p in tmp_path.rglob("escaped.dat") if root not in p.parents] == []
    assert not [p for p in out.rglob("*") if p.is_file()]  # refused before any download


def test_a_link_out_of_out_is_refused(release, tmp_path):
    root, url, files = release
    out = tmp_path / "ptbxl"
    (tmp_path / "elsewhere").mkdir()
    out.mkdir()
    (out / "records100").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(DownloadError, match="outside"):
        download(out, "100", base_url=url)
    assert not list((tmp_path / "elsewhere").iterdir())


def test_cli_json_prints_the_counts(release, tmp_path):
    _, url, files = release
    out = tmp_path / "ptbxl"
    args = ["data", "download", "ptbxl", "--out", str(out), "--mirror", url, "--json"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    counts = json.loads(result.stdout)
    assert counts == {"out": str(out), "files": len(files), "downloaded": len(files),
                      "verified_before": 0}  # fmt: skip
