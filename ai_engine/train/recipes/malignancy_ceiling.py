"""How high can a malignancy classifier score on `evaluate`'s nodules? The label model's own AUC (session 20).

`evaluate`'s phantoms draw their nodules from the label model unconditioned (about a third malignant),
and score malignancy on the nodules found, nearly all of those ≥ 4 mm. This draws N nodules the same
way (no image: attributes only), keeps those ≥ 4 mm, and scores observers who know part of what was
drawn, each ranking by the label model's own log-odds given what it knows
(labels.malignant_log_odds): everything; everything but the zone (a nodule-centred patch does not
show it); and that with lobulation seen only from D mm up (at evaluate's 1.25 × 1.25 × 1.5 mm a
5 mm nodule's lobes bulge under a voxel: recipes README, session 19).

Session 19 put these ceilings on its check patches, half of them conditioned malignant, by logistic
regressions on the margin and the log diameter; evaluate's population holds more that an observer
can read (calcified, part-solid, ground-glass nodules), so its ceilings are higher.

Usage: python -m ai_engine.train.recipes.malignancy_ceiling [N] [SEED]   (defaults 60000, 2020)
"""
from __future__ import annotations

import sys

import numpy as np

from ai_engine.evaluate.classification import roc_auc
from ai_engine.evaluate.synthetic import MIN_DIAMETER_MM
from ai_engine.synthetic.labels import draw_attributes, malignant_log_odds
from ai_engine.synthetic.truth import NoduleAttributes

LOBULATION_SEEN_FROM_MM = (6.0, 8.0)
SETTLED = 100.0  # a log-odds beyond any finite one the label model gives


def observers() -> dict[str, dict]:
    """Each observer's name → what it knows (malignant_log_odds's keywords, ``lobulation_from`` in mm)."""
    out = {"everything drawn": {}, "all but the zone": {"zone_known": False}}
    for mm in LOBULATION_SEEN_FROM_MM:
        out[f"all but the zone, lobulation only from {mm:g} mm"] = {"zone_known": False, "lobulation_from": mm}
    return out


def ceilings(nodules: list[NoduleAttributes]) -> dict[str, float]:
    """ROC AUC of each observer's log-odds against the drawn labels."""
    y = np.array([a.malignant for a in nodules], int)
    out = {}
    for name, knows in observers().items():
        from_mm = knows.get("lobulation_from", 0.0)
        scores = [malignant_log_odds(a, zone_known=knows.get("zone_known", True),
                                     lobulation_seen=a.diameter_mm >= from_mm) for a in nodules]
        out[name] = roc_auc(y, np.clip(scores, -SETTLED, SETTLED))  # ±inf (a settled label) tie as one rank
    return out


def main(n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    nodules = [a for a in (draw_attributes(rng) for _ in range(n)) if a.diameter_mm >= MIN_DIAMETER_MM]
    print(f"{len(nodules)} nodules ≥ {MIN_DIAMETER_MM:g} mm of {n} drawn, "
          f"{np.mean([a.malignant for a in nodules]):.3f} malignant")
    for name, auc in ceilings(nodules).items():
        print(f"{name:50s} {auc:.4f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 60000, int(sys.argv[2]) if len(sys.argv) > 2 else 2020)
