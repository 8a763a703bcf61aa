"""Lead names: aliases mapped to the canonical 12-lead order (stdlib only; the runtime uses it)."""

from __future__ import annotations

import re

from bell_edge.config import CANONICAL_LEADS

_ALIASES = {name.lower(): name for name in CANONICAL_LEADS}
_ALIASES.update({"mlii": "II", "mli": "I", "mliii": "III", "lead i": "I", "lead ii": "II"})
# Leads that exist but are not part of the standard 12: dropped without complaint.
_EXTRA_LEADS = {"vx", "vy", "vz", "x", "y", "z", "v3r", "v4r", "v5r", "v7", "v8", "v9", "ecg"}


def canonical_lead(name: str) -> str | None:
    """Canonical name of a lead alias, None for a known extra lead; KeyError when unknown."""
    key = re.sub(r"[\s_-]+", " ", name.strip().lower())
    if key in _ALIASES:
        return _ALIASES[key]
    if key in _EXTRA_LEADS:
        return None
    raise KeyError(name)
