"""The generative label model of synthetic nodules (written down so the labels mean something).

Every phantom nodule is drawn top-down; the image is then rendered from the drawn attributes, so
the malignancy and subtype labels are carried by what the image shows (size, location, density,
margin, solid component, cavitation, calcification).

1. Location:  zone ~ Cat(upper .30, middle .35, lower .35);  side ~ Cat(right .55, left .45)
2. Size:      diameter_mm ~ LogNormal(mu=ln 7, sigma=0.5) truncated to [3, 30]
              (mode ≈ 5.5 mm, ~half of all nodules in 5–10 mm: the LUNA16 histogram's shape)
3. Density:   type ~ Cat(solid .70, part-solid .12, ground-glass .18); part-solid needs ≥ 6 mm
              (smaller ones become ground-glass);  calcified ~ Bernoulli(.15) for solid nodules
4. Label:     logit p = -1.0 + 2.5·ln(diameter_mm / 8) + 0.8·[upper zone]
                        + 1.2·[part-solid] + 0.3·[ground-glass] - 4.0·[calcified]
              malignant ~ Bernoulli(p)
5. Margin | label: malignant: round .10, lobulated .35, spiculated .55
                   benign:    round .75, lobulated .20, spiculated .05
6. Subtype | malignant (weights, normalised):
              part-solid / ground-glass: adenocarcinoma .90, squamous .05, large cell .05
              solid: adenocarcinoma .40, squamous .40, large cell .05 (< 10 mm) / .20 (10–20) /
                     .45 (≥ 20 mm)
7. Appearance | subtype and label:
              placement: adenocarcinoma juxtapleural .20 / peripheral .50 / intermediate .30;
                         squamous central .70 / intermediate .30;
                         large cell juxtapleural .20 / peripheral .60 / intermediate .20;
                         benign juxtapleural .20 / peripheral .30 / intermediate .40 / central .10
              a solid squamous nodule ≥ 10 mm cavitates (air core) with probability .35
              solid component of part-solid: diameter × U(.40, .75) if malignant, × U(.20, .45) if not
              calcification pattern (calcified only): diffuse .40, central .40, popcorn .20
              HU: solid U(20, 60); ground-glass U(-650, -420); calcium U(250, 600) diffuse,
                  U(400, 900) central/popcorn

Conditioning (NoduleSpec): ``malignant`` and ``subtype`` are *conditioned on* by rejection (the
upstream draws are repeated until the label matches, so e.g. malignant nodules come out larger);
after 500 failed draws the label is simply set. Every other given field is *clamped* (used as
is; its downstream draws still follow the model).
"""

from __future__ import annotations

import math
import numpy as np

from ai_engine.findings import NoduleType, Side, Subtype, Zone
from ai_engine.synthetic.truth import NoduleAttributes, NoduleSpec, NoduleTruth

# Label model coefficients (step 4).
LOGIT_INTERCEPT = -1.0
LOGIT_LOG_DIAMETER = 2.5  # per ln(diameter_mm / LOGIT_REF_DIAMETER_MM)
LOGIT_REF_DIAMETER_MM = 8.0
LOGIT_UPPER_ZONE = 0.8
LOGIT_TYPE = {NoduleType.SOLID: 0.0, NoduleType.PART_SOLID: 1.2, NoduleType.GROUND_GLASS: 0.3}
LOGIT_CALCIFIED = -4.0

ZONE_P = {Zone.UPPER: 0.30, Zone.MIDDLE: 0.35, Zone.LOWER: 0.35}
SIDE_P = {Side.RIGHT: 0.55, Side.LEFT: 0.45}
DIAMETER_LOGNORMAL = (math.log(7.0), 0.5)
DIAMETER_RANGE_MM = (3.0, 30.0)
TYPE_P = {NoduleType.SOLID: 0.70, NoduleType.PART_SOLID: 0.12, NoduleType.GROUND_GLASS: 0.18}
PART_SOLID_MIN_MM = 6.0
CALCIFIED_P = 0.15
MORPHOLOGY_P = {
    True: {"round": 0.10, "lobulated": 0.35, "spiculated": 0.55},
    False: {"round": 0.75, "lobulated": 0.20, "spiculated": 0.05},
}
PLACEMENT_P = {
    Subtype.ADENOCARCINOMA: {"juxtapleural": 0.2, "peripheral": 0.5, "intermediate": 0.3},
    Subtype.SQUAMOUS_CELL_CARCINOMA: {"central": 0.7, "intermediate": 0.3},
    Subtype.LARGE_CELL_CARCINOMA: {"juxtapleural": 0.2, "peripheral": 0.6, "intermediate": 0.2},
    None: {"juxtapleural": 0.2, "peripheral": 0.3, "intermediate": 0.4, "central": 0.1},
}
CAVITATION_P = 0.35
CAVITATION_MIN_MM = 10.0
CALCIFICATION_P = {"diffuse": 0.4, "central": 0.4, "popcorn": 0.2}
MAX_REJECTIONS = 500


def p_malignant(diameter_mm: float, zone: Zone, nodule_type: NoduleType, calcified: bool) -> float:
    """Step 4 of the label model: probability that a nodule with these attributes is malignant."""
    logit = (
        LOGIT_INTERCEPT
        + LOGIT_LOG_DIAMETER * math.log(diameter_mm / LOGIT_REF_DIAMETER_MM)
        + LOGIT_UPPER_ZONE * (zone == Zone.UPPER)
        + LOGIT_TYPE[NoduleType(nodule_type)]
        + LOGIT_CALCIFIED * bool(calcified)
    )
    return 1.0 / (1.0 + math.exp(-logit))


# P(malignant) over the whole label model (steps 1–4, no conditioning): the mean of p_malignant over
# 100,000 draws of draw_attributes (seed 123)
POPULATION_MALIGNANT_P = 0.314
POSTERIOR_CLIP = (0.01, 0.99)


def malignant_log_odds(truth: NoduleTruth | NoduleAttributes, prior: float = 0.5, zone_known: bool = True,
                       lobulation_seen: bool = True) -> float:
    """log P(malignant | what was drawn) / P(benign | …) in a set where ``prior`` of the nodules are
    malignant (0.5: ``malignant`` conditioned half the time, as the training patches are).

    Bayes over the label model: step 4's odds, moved from the population's malignant rate to
    ``prior``, plus the log likelihood ratios of what steps 5–7 drew given the label (margin,
    placement, the part-solid's solid fraction, cavitation); ±inf where a solid fraction or a cavity
    settles the label. What an observer may not see: ``zone_known=False`` averages step 4 over
    ZONE_P (the zone is drawn independently of size and density; a nodule-centred patch does not show
    it); ``lobulation_seen=False`` merges round and lobulated (a lobe under a voxel is not in the image)."""
    p = truth.p_malignant if zone_known else sum(
        w * p_malignant(truth.diameter_mm, zone, truth.nodule_type, truth.calcified) for zone, w in ZONE_P.items())
    margins = (truth.morphology,) if lobulation_seen or truth.morphology == "spiculated" else ("round", "lobulated")
    logit = (math.log(p / (1 - p))
             - math.log(POPULATION_MALIGNANT_P / (1 - POPULATION_MALIGNANT_P)) + math.log(prior / (1 - prior))
             + math.log(sum(MORPHOLOGY_P[True][m] for m in margins) / sum(MORPHOLOGY_P[False][m] for m in margins)))
    weights = subtype_weights(NoduleType(truth.nodule_type), truth.diameter_mm)
    placed = sum(w * PLACEMENT_P[s].get(truth.placement, 0.0) for s, w in weights.items()) / sum(weights.values())
    logit += math.log(placed / PLACEMENT_P[None][truth.placement])
    if truth.cavitated:
        return math.inf
    if truth.solid_component_mm is not None:  # step 7: a fraction in U(.40, .75) if malignant, U(.20, .45) if not
        fraction = truth.solid_component_mm / truth.diameter_mm
        malignant_density = 1 / 0.35 if 0.40 - 2e-3 <= fraction <= 0.75 + 2e-3 else 0.0
        benign_density = 1 / 0.25 if 0.20 - 2e-3 <= fraction <= 0.45 + 2e-3 else 0.0
        if benign_density == 0.0:
            return math.inf
        if malignant_density == 0.0:
            return -math.inf
        logit += math.log(malignant_density / benign_density)
    return logit


def posterior_malignant(truth: NoduleTruth | NoduleAttributes, prior: float = 0.5, zone_known: bool = True) -> float:
    """P(malignant | everything drawn about the nodule, or all but its zone): malignant_log_odds's
    sigmoid, clipped to POSTERIOR_CLIP, since a solid fraction or a cavity can make it 0 or 1."""
    lo, hi = POSTERIOR_CLIP
    logit = malignant_log_odds(truth, prior, zone_known)
    if math.isinf(logit):
        return hi if logit > 0 else lo
    return min(hi, max(lo, 1.0 / (1.0 + math.exp(-logit))))


def subtype_weights(nodule_type: NoduleType, diameter_mm: float) -> dict[Subtype, float]:
    """Step 6: unnormalised subtype weights for a malignant nodule."""
    if nodule_type != NoduleType.SOLID:
        return {Subtype.ADENOCARCINOMA: 0.90, Subtype.SQUAMOUS_CELL_CARCINOMA: 0.05,
                Subtype.LARGE_CELL_CARCINOMA: 0.05}
    large = 0.05 if diameter_mm < 10 else 0.20 if diameter_mm < 20 else 0.45
    return {Subtype.ADENOCARCINOMA: 0.40, Subtype.SQUAMOUS_CELL_CARCINOMA: 0.40,
            Subtype.LARGE_CELL_CARCINOMA: large}


def _choice(rng: np.random.Generator, probs: dict):
    keys = list(probs)
    p = np.array([probs[k] for k in keys], dtype=float)
    return keys[int(rng.choice(len(keys), p=p / p.sum()))]


def draw_diameter_mm(rng: np.random.Generator) -> float:
    """Step 2: truncated lognormal diameter."""
    mu, sigma = DIAMETER_LOGNORMAL
    lo, hi = DIAMETER_RANGE_MM
    while True:
        d = float(rng.lognormal(mu, sigma))
        if lo <= d <= hi:
            return d


def _draw_density(rng: np.random.Generator, spec: NoduleSpec, diameter_mm: float) -> tuple[NoduleType, bool]:
    if spec.calcified:
        return NoduleType.SOLID, True
    nodule_type = spec.nodule_type or _choice(rng, TYPE_P)
    if nodule_type == NoduleType.PART_SOLID and diameter_mm < PART_SOLID_MIN_MM and spec.nodule_type is None:
        nodule_type = NoduleType.GROUND_GLASS
    calcified = spec.calcified
    if calcified is None:
        calcified = nodule_type == NoduleType.SOLID and rng.random() < CALCIFIED_P
    return NoduleType(nodule_type), bool(calcified)


def _draw_upstream(rng: np.random.Generator, spec: NoduleSpec) -> dict:
    """Steps 1–4 (clamping what the spec fixes)."""
    zone = spec.zone or _choice(rng, ZONE_P)
    side = spec.side or _choice(rng, SIDE_P)
    diameter = float(spec.diameter_mm) if spec.diameter_mm is not None else draw_diameter_mm(rng)
    nodule_type, calcified = _draw_density(rng, spec, diameter)
    p = p_malignant(diameter, zone, nodule_type, calcified)
    return dict(zone=Zone(zone), side=Side(side), diameter_mm=diameter, nodule_type=nodule_type,
                calcified=calcified, p_malignant=p, malignant=bool(rng.random() < p))


def _draw_subtype(rng: np.random.Generator, up: dict) -> Subtype | None:
    if not up["malignant"]:
        return None
    return _choice(rng, subtype_weights(up["nodule_type"], up["diameter_mm"]))


def _wanted(spec: NoduleSpec) -> bool | None:
    return True if spec.subtype is not None else spec.malignant


def _draw_labelled(rng: np.random.Generator, spec: NoduleSpec) -> tuple[dict, Subtype | None]:
    """Steps 1–6, conditioning on the spec's malignant/subtype by rejection."""
    want = _wanted(spec)
    for _ in range(MAX_REJECTIONS):
        up = _draw_upstream(rng, spec)
        subtype = _draw_subtype(rng, up)
        if (want is None or up["malignant"] == want) and spec.subtype in (None, subtype):
            return up, subtype
    up["malignant"] = bool(want)
    return up, (Subtype(spec.subtype) if spec.subtype else _draw_subtype(rng, up))


def _solid_component(rng: np.random.Generator, spec: NoduleSpec, up: dict) -> float | None:
    if up["nodule_type"] != NoduleType.PART_SOLID:
        return None
    if spec.solid_component_mm is not None:
        return float(spec.solid_component_mm)
    lo, hi = (0.40, 0.75) if up["malignant"] else (0.20, 0.45)
    return round(up["diameter_mm"] * float(rng.uniform(lo, hi)), 2)


def _calcification(rng: np.random.Generator, spec: NoduleSpec, calcified: bool) -> str | None:
    if not calcified:
        return None
    return spec.calcification or _choice(rng, CALCIFICATION_P)


def _cavitated(rng: np.random.Generator, spec: NoduleSpec, up: dict, subtype: Subtype | None) -> bool:
    if spec.cavitated is not None:
        return bool(spec.cavitated)
    eligible = subtype == Subtype.SQUAMOUS_CELL_CARCINOMA and up["diameter_mm"] >= CAVITATION_MIN_MM
    return bool(eligible and up["nodule_type"] == NoduleType.SOLID and rng.random() < CAVITATION_P)


def _solid_hu(rng: np.random.Generator, spec: NoduleSpec, calcification: str | None) -> float:
    if spec.solid_hu is not None:
        return float(spec.solid_hu)
    if calcification == "diffuse":
        return float(rng.uniform(250, 600))
    if calcification is not None:
        return float(rng.uniform(400, 900))
    return float(rng.uniform(20, 60))


def draw_attributes(rng: np.random.Generator, spec: NoduleSpec | None = None) -> NoduleAttributes:
    """Draw one nodule's attributes from the label model (steps 1–7), honouring ``spec``."""
    spec = spec or NoduleSpec()
    up, subtype = _draw_labelled(rng, spec)
    morphology = spec.morphology or _choice(rng, MORPHOLOGY_P[up["malignant"]])
    placement = spec.placement or _choice(rng, PLACEMENT_P[subtype])
    calcification = _calcification(rng, spec, up["calcified"])
    return NoduleAttributes(
        **up,
        subtype=subtype,
        morphology=morphology,
        solid_component_mm=_solid_component(rng, spec, up),
        placement=placement,
        cavitated=_cavitated(rng, spec, up, subtype),
        calcification=calcification,
        solid_hu=_solid_hu(rng, spec, calcification),
        ggo_hu=float(spec.ggo_hu) if spec.ggo_hu is not None else float(rng.uniform(-650, -420)),
    )

