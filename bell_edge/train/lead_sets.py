"""Lead subsets in training: lead dropout, and decision thresholds fitted per lead set.

A 2- or 3-lead monitor must not inherit thresholds fitted on 12 leads: `lead_set_thresholds`
refits them on the val split with every lead outside the set masked (zeroed, mask False, as the
runtime feeds a lead the device lacks). `drop_leads` trains one model for all of them.

Each lead set also carries alarm thresholds: per class, the score that a share `ALARM_FPR` of
the val records without the class exceed, or the decision threshold where that is lower. A
decision threshold (best F1) suits a screening flag on its own; an alarm that needs the model
*and* a second, independent test (the AF alarm: RR irregularity) wants the model at high
sensitivity and takes its specificity from both, so it is never less sensitive than the flag.
"""

from __future__ import annotations

import numpy as np
import torch

from bell_edge.config import CANONICAL_LEADS
from bell_edge.data.cache import lead_set_mask
from bell_edge.data.leads import LEAD_SETS
from bell_edge.metrics import best_f1_thresholds, evaluate_scores, per_record

ALARM_FPR = 0.05

SUBSET_ROWS = [
    [CANONICAL_LEADS.index(lead) for lead in leads]
    for leads in LEAD_SETS.values()
    if len(leads) < len(CANONICAL_LEADS)
]


def drop_leads(
    x: torch.Tensor, mask: torch.Tensor, share: float, g: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Feed a `share` of the windows with fewer leads (`kept_leads`). Dropped leads are zeroed
    and masked, as the runtime feeds a missing lead."""
    if share <= 0:
        return x, mask
    keep = kept_leads(mask, share, g)
    return x * keep[:, :, None].to(x.dtype), keep.to(mask.dtype)


def kept_leads(mask: torch.Tensor, share: float, g: torch.Generator) -> torch.Tensor:
    """Bool `mask` with a `share` of the windows cut to fewer leads: half of them one of the
    monitor lead sets (I+II, I+II+III, I+II+V1), half a random 2 or 3 of their leads."""
    n, leads = mask.shape
    on = g.device  # a generator draws only on its own device
    chosen = torch.rand(n, generator=g, device=on) < share
    keep = torch.ones(n, leads, dtype=torch.bool)
    for i in torch.nonzero(chosen).flatten().tolist():
        keep[i] = False
        if torch.rand(1, generator=g, device=on).item() < 0.5:
            rows = SUBSET_ROWS[int(torch.randint(len(SUBSET_ROWS), (1,), generator=g, device=on))]
        else:
            k = int(torch.randint(2, 4, (1,), generator=g, device=on))
            rows = torch.randperm(leads, generator=g, device=on)[:k].tolist()
        keep[i, rows] = True
    return keep.to(mask.device) & mask.bool()


def alarm_thresholds(y: np.ndarray, scores: np.ndarray, decision: np.ndarray) -> np.ndarray:
    """Per class, the score exceeded by ALARM_FPR of the records without it (1.0 when all have
    it), or the `decision` threshold where that is lower."""
    out = np.ones(y.shape[1])
    for c in range(y.shape[1]):
        negatives = scores[y[:, c] == 0, c]
        if len(negatives):
            out[c] = np.quantile(negatives, 1 - ALARM_FPR)
    return np.minimum(out, decision)


def lead_set_thresholds(predict_fn, windows, masks, record_ids, labels, classes) -> dict:
    """Per lead set: best-F1 thresholds and alarm thresholds on these (val) windows with the
    other leads masked, and the set's macro AUROC. `predict_fn(windows, masks)` gives window
    scores."""
    out = {}
    for name, leads in LEAD_SETS.items():
        m = lead_set_mask(masks, leads)
        x = windows * m[:, :, None].astype(windows.dtype)
        _, scores, y = per_record(record_ids, predict_fn(x, m), labels)
        thresholds = best_f1_thresholds(y, scores)
        auroc = evaluate_scores(y, scores, classes, thresholds, bootstrap=0)["macro_auroc"]
        out[name] = {
            "thresholds": thresholds.tolist(),
            "alarm_thresholds": alarm_thresholds(y, scores, thresholds).tolist(),
            "val_macro_auroc": auroc,
        }
    return out
