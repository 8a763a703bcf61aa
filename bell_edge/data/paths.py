"""Where the data is when no folder is given: one resolver for every command (torch-free)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from bell_edge.errors import InputError

ENV = "BELL_EDGE_DATA"
# The data beside a checkout (../shared/data); from an installed wheel it is absent.
CHECKOUT_DATA = Path(__file__).resolve().parents[3] / "shared" / "data"


def resolve_data(
    data: str | Path | None = None, fallbacks: Iterable[Path] = (), checkout_folder="ptbxl100"
) -> Path:
    """`data` (--data), else $BELL_EDGE_DATA, else the checkout's ../shared/data/<checkout_folder>,
    else the first existing folder of `fallbacks`; otherwise a one-line InputError on how to get
    PTB-XL."""
    if data:
        return Path(data)
    if os.environ.get(ENV):
        return Path(os.environ[ENV])
    for folder in (CHECKOUT_DATA / checkout_folder, *fallbacks):
        if folder.is_dir():
            return folder
    raise InputError(
        f"no data: pass --data PATH or set {ENV} "
        "(get PTB-XL with `bell-edge data download ptbxl --out DIR`)"
    )
