"""A folder that appears whole or not at all (stdlib only, importable from every layer)."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def staged_dir(out: str | Path) -> Iterator[Path]:
    """Yield a temporary folder beside `out`; when the block completes, it replaces `out`.

    An existing `out` is moved aside first and removed after the swap, so a reader sees the old
    folder or the new one, never half of either. If the block raises, `out` is left as it was.
    """
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)  # mkdtemp's 0700 would stay on the published folder
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
