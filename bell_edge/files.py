"""Files and folders that appear whole or not at all (stdlib and `errors` only, importable from
every layer)."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

from bell_edge.errors import InputError


def _mode(full: int) -> int:
    umask = os.umask(0)
    os.umask(umask)
    return full & ~umask  # mkstemp/mkdtemp's 0600/0700 would stay on what is published


def _in_folder(folder: Path, make):
    """`make()` after creating `folder`; a system refusal (read-only, no space, a file in the
    way) is one InputError naming the folder."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        return make()
    except OSError as exc:
        raise InputError(f"{folder}: cannot write there ({exc.strerror or exc})") from None


def ensure_writable(folder: str | Path) -> None:
    """Refuse a folder that cannot be written before long work is spent on what goes there."""
    folder = Path(folder)
    fd, name = _in_folder(folder, lambda: tempfile.mkstemp(prefix=".write-test.", dir=folder))
    os.close(fd)
    os.unlink(name)


@contextlib.contextmanager
def staged_file(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `path` (same suffix, so writers that read it still work);
    when the block completes, it is synced to disk and renamed onto `path`. If the block raises,
    `path` is left as it was and the temporary is removed."""
    path = Path(path)
    fd, name = _in_folder(
        path.parent,
        lambda: tempfile.mkstemp(prefix=f".{path.name}.", suffix=path.suffix, dir=path.parent),
    )
    os.close(fd)
    tmp = Path(name)
    tmp.chmod(_mode(0o666))
    try:
        yield tmp
        with tmp.open("rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def resumable(path: str | Path) -> Iterator[Path]:
    """Yield `path.part`, which stays between attempts so a download can resume into it; when the
    block completes, the part is synced to disk and renamed onto `path`. If the block raises,
    `path` is left as it was and the part is kept for the next attempt."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    part = path.with_name(path.name + ".part")
    yield part
    with part.open("rb") as f:
        os.fsync(f.fileno())
    os.replace(part, path)


@contextlib.contextmanager
def appending(path: str | Path, fresh: bool = False) -> Iterator[TextIO]:
    """A line log at `path` opened for appending (emptied first when `fresh`), line-buffered:
    each line is in the file once written, so a kill loses at most the line being written
    (readers of a log drop a torn last line). Logs are the only files written in place."""
    path = Path(path)
    log_file = _in_folder(path.parent, lambda: path.open("w" if fresh else "a", buffering=1))
    with log_file as log:
        yield log
        os.fsync(log.fileno())


def write_text(path: str | Path, text: str) -> None:
    """`text` at `path`, atomically."""
    with staged_file(path) as tmp:
        tmp.write_text(text)


def write_json(path: str | Path, obj, indent: int = 1) -> None:
    """`obj` as JSON at `path`, atomically."""
    write_text(path, json.dumps(obj, indent=indent) + "\n")


def holds_files(out: str | Path) -> bool:
    """Whether the output folder `out` has anything in it to replace; a file there is refused in
    one line, as a folder cannot replace it."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: is a file, not a folder")
    return out.exists() and any(out.iterdir())


def check_file_target(path: str | Path, force: bool) -> None:
    """Refuse, before the work, an output file that exists (without `force`) or whose folder
    does not: a mistyped folder is not made on the way, as it is for output folders."""
    path = Path(path)
    if path.exists() and not force:
        raise InputError(f"{path}: exists (use --force to replace it)")
    if not path.parent.is_dir():
        raise InputError(f"{path}: folder {path.parent} does not exist")


CLAIMED = ".bell-edge"  # marks a folder that a resumable job (an experiment, the demo) fills


def claim_folder(out: str | Path, force: bool) -> None:
    """Take `out` for a job that fills it stage by stage and reuses what it finds: the folder
    may be missing, empty, or one such a job claimed before; anything else needs `force`."""
    out = Path(out)
    if holds_files(out) and not (out / CLAIMED).is_file() and not force:
        raise InputError(
            f"{out}: exists, is not empty and was not written by bell-edge (use --force to "
            "write into it)"
        )
    out.mkdir(parents=True, exist_ok=True)
    write_text(out / CLAIMED, "")


def holds_work(folder: Path) -> bool:
    """Whether `folder` holds anything but empty folders and claim markers."""
    return any(not p.is_dir() and p.name != CLAIMED for p in folder.rglob("*"))


@contextlib.contextmanager
def tidied_on_failure(out: str | Path) -> Iterator[None]:
    """A block that writes into the folder `out`: if it raises, the folders it created for `out`
    (missing parents too) are removed again where they hold no work (`holds_work`), so a failed
    command leaves nothing to `--force` over. One that holds a checkpoint or a log stays, for
    `--resume` or a look."""
    top = Path(out)  # the outermost folder the block may create
    while not top.parent.exists() and top.parent != top:
        top = top.parent
    existed = top.exists() or top.is_symlink()
    try:
        yield
    except BaseException:
        if not existed and top.is_dir() and not holds_work(top):
            shutil.rmtree(top, ignore_errors=True)
        raise


@contextlib.contextmanager
def staged_dir(out: str | Path) -> Iterator[Path]:
    """Yield a temporary folder beside `out`; when the block completes, it replaces `out`.

    An existing `out` is moved aside first and removed after the swap, so a reader sees the old
    folder or the new one, never half of either. If the block raises, `out` is left as it was.
    """
    out = Path(out)
    holds_files(out)
    tmp = Path(
        _in_folder(out.parent, lambda: tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    )
    tmp.chmod(_mode(0o777))
    try:
        yield tmp
        if out.exists():
            old = tmp.with_name(tmp.name + ".old")
            out.rename(old)
            tmp.rename(out)
            shutil.rmtree(old)
        else:
            tmp.rename(out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
