"""`bell-edge data download ptbxl`: PhysioNet's PTB-XL release, verified and resumable.

The only networked code in bell-edge. Every file is checked against the release's published
`SHA256SUMS.txt`; verified files are skipped on a re-run and partial files resume with an HTTP
Range request. Offline, the first request fails at once with a one-line message.
"""

from __future__ import annotations

import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath

from bell_edge.data.cache import file_sha256
from bell_edge.errors import CheckFailed, InputError
from bell_edge.files import resumable

PTBXL_URL = "https://physionet.org/files/ptb-xl/1.0.3/"
SUMS = "SHA256SUMS.txt"
RATES = {"100": ("records100/",), "500": ("records500/",), "all": ("records100/", "records500/")}
TIMEOUT_S = 20
CHUNK = 1 << 16


class DownloadError(CheckFailed):
    """The release could not be fetched or did not verify."""


def parse_sums(text: str) -> dict[str, str]:
    """`sha256  relative/path` lines -> {path: sha256}."""
    sums = {}
    for line in text.splitlines():
        parts = line.strip().split(maxsplit=1)
        if len(parts) == 2:
            sums[parts[1].lstrip("*")] = parts[0].lower()
    return sums


def wanted(sums: dict[str, str], rate: str) -> dict[str, str]:
    """Metadata at the release root plus the signal folders of the chosen rate."""
    folders = RATES[rate]
    return {p: h for p, h in sums.items() if "/" not in p or p.startswith(folders)}


def check_inside(out: Path, names) -> None:
    """Refuse the whole release when any listed name would land outside `out`
    (`records100/../../x`, an absolute path, a link out of `out`): nothing is written."""
    root = out.resolve()
    for name in names:
        parts = PurePosixPath(name).parts
        target = (out / name).resolve()
        if (
            not parts
            or PurePosixPath(name).is_absolute()
            or ".." in parts
            or (not target.is_relative_to(root))
        ):
            raise DownloadError(f"{SUMS} lists {name!r}, a path outside {out}; refused, nothing "
                                "downloaded")  # fmt: skip


def _fetch(url: str, target: Path, expected: str) -> None:
    """Download `url` to `target` through `target.part`, resuming it; verify, then rename."""
    with resumable(target) as part:
        have = part.stat().st_size if part.exists() else 0
        request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
                mode = "ab" if have and response.status == 206 else "wb"
                with part.open(mode) as sink:
                    while block := response.read(CHUNK):
                        sink.write(block)
        except urllib.error.HTTPError as exc:
            if exc.code != 416:  # 416: the part is already whole
                raise DownloadError(f"{url}: HTTP {exc.code} {exc.reason}") from None
        except (urllib.error.URLError, OSError) as exc:
            raise DownloadError(f"{url}: {getattr(exc, 'reason', exc)}") from None
        if file_sha256(part) != expected:
            part.unlink()
            raise DownloadError(f"{target}: sha256 does not match {SUMS}; removed, run again")


def download(
    out: str | Path,
    rate: str = "100",
    base_url: str = PTBXL_URL,
    workers: int = 8,
    progress: Callable[[int, int], None] | None = None,
) -> dict[str, int]:
    """Fetch the release into `out`; returns counts of files downloaded and already verified."""
    if rate not in RATES:
        raise ValueError(f"rate must be one of {', '.join(RATES)}, got {rate!r}")
    if urllib.parse.urlsplit(base_url).scheme not in ("http", "https", "file"):
        raise InputError(f"--mirror {base_url}: not an http(s) or file URL")
    base_url = base_url.rstrip("/") + "/"  # a mirror given without its trailing slash
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: is a file, not a folder")
    out.mkdir(parents=True, exist_ok=True)
    try:
        with urllib.request.urlopen(base_url + SUMS, timeout=TIMEOUT_S) as response:
            sums = parse_sums(response.read().decode())
    except (urllib.error.URLError, OSError) as exc:
        raise DownloadError(
            f"cannot reach {base_url} ({getattr(exc, 'reason', exc)}); this command needs the "
            f"internet: download PTB-XL from {PTBXL_URL} by hand and pass its folder as --data"
        ) from None
    if not sums:
        raise DownloadError(f"{base_url + SUMS}: no checksums listed")
    files = wanted(sums, rate)
    check_inside(out, files)
    todo = [p for p, h in files.items() if not ((out / p).is_file() and file_sha256(out / p) == h)]
    done = len(files) - len(todo)
    if progress:
        progress(done, len(files))

    def one(path: str) -> None:
        target = out / path
        target.parent.mkdir(parents=True, exist_ok=True)
        _fetch(base_url + path, target, files[path])

    with ThreadPoolExecutor(workers) as pool:
        for _ in pool.map(one, todo):
            done += 1
            if progress:
                progress(done, len(files))
    return {"files": len(files), "downloaded": len(todo), "verified_before": len(files) - len(todo)}
