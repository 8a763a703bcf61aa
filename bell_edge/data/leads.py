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


# The lead sets a bundle carries decision thresholds for: a 12-lead cart and the usual 2- and
# 3-lead monitors and Holters. Keyed by the comma-joined names (`--leads I,II`).
LEAD_SETS: dict[str, tuple[str, ...]] = {
    ",".join(leads): leads
    for leads in (CANONICAL_LEADS, ("I", "II"), ("I", "II", "III"), ("I", "II", "V1"))
}


def parse_leads(text: str) -> tuple[str, ...]:
    """`I,II` -> canonical names in the 12-lead order; ValueError naming an unknown lead."""
    names = []
    for part in (p for p in text.split(",") if p.strip()):
        try:
            lead = canonical_lead(part)
        except KeyError:
            lead = None
        if lead is None:
            raise ValueError(f"unknown lead {part.strip()!r} (use {', '.join(CANONICAL_LEADS)})")
        names.append(lead)
    if not names:
        raise ValueError("no lead names given")
    return tuple(lead for lead in CANONICAL_LEADS if lead in names)
