"""Synthetic chest CT phantoms with exact nodule masks and labels (seeded, reproducible).

API (stable)
------------
``make_ct_phantom(seed, shape_zyx=(96, 160, 160), spacing_mm=(2.0, 2.0, 2.5), n_nodules=None,
nodule_spec=None) -> Phantom``
    A chest CT in HU. ``spacing_mm`` is (x, y, z) as in ITK; any shape and spacing works (the
    chest is scaled down to fit a small field of view; a slab < 60 mm thick is a slice through
    mid-chest). ``n_nodules=None`` draws 0–5 nodules; ``nodule_spec`` (a list of
    :class:`NoduleSpec`) draws exactly those, every ``None`` field drawn from the label model.
    Same seed → identical arrays. Default size takes ≈ 0.3–0.6 s; 300×512×512 a few seconds.

``Phantom`` (frozen): ``volume: CTVolume`` (float32 HU [z, y, x], identity direction, centred on
patient (0, 0, 0)), ``nodule_mask`` (uint16, 0 background, i = ``nodules[i-1]``), ``lung_mask``
(bool, both lungs incl. their vessels, airways and nodules; trachea and main bronchi excluded),
``nodules: tuple[NoduleTruth, ...]``, ``seed``.

``NoduleTruth`` (frozen): ``label, centre_zyx, centre_mm (x, y, z), diameter_mm, volume_mm3,
nodule_type: NoduleType, calcified, malignant: bool, subtype: Subtype | None, morphology
("round" | "lobulated" | "spiculated"), solid_component_mm (part-solid only), side: Side, zone:
Zone, placement ("juxtapleural" | "peripheral" | "intermediate" | "central" | "given"),
cavitated, calcification ("diffuse" | "central" | "popcorn" | None), p_malignant`` (the label
model's probability).

``NoduleSpec`` (frozen, every field optional): ``centre_mm, diameter_mm, nodule_type, calcified,
calcification, malignant, subtype, morphology, solid_component_mm, side, zone, placement,
cavitated, solid_hu, ggo_hu``. E.g. one exact 10 mm solid sphere at a chosen point::

    NoduleSpec(centre_mm=(x, y, z), diameter_mm=10, nodule_type=NoduleType.SOLID,
               morphology="round", calcified=False)

``lung_point_mm(seed, side, zone, shape_zyx=..., spacing_mm=..., clearance_mm=8) -> (x, y, z)``
    A point inside that lung zone of the same seed's phantom (to aim a ``NoduleSpec`` at).

``make_nodule_patch(seed, size_mm=64, spacing_mm=1.0, malignant=None, subtype=None)
-> (patch, NoduleTruth)``
    A cube (float32 HU [n, n, n], n = round(size_mm / spacing_mm); 64³ by default) centred near
    one nodule in local lung context (parenchyma, vessels, pleura/chest wall for peripheral
    nodules, hilar vessels and bronchus for central ones). ``malignant``/``subtype`` condition
    the label model (the size, type and location signals come along). Milliseconds each.

``make_ct_dataset(seeds, **kwargs) -> Iterator[Phantom]``; ``make_patch_dataset(seeds, **kwargs)
-> Iterator[(patch, NoduleTruth)]``.

The generative label model (sizes, types, malignancy logit, morphology and subtype given the
label) is written out in :mod:`ai_engine.synthetic.labels`; anatomy in ``anatomy``, vessels and
airways in ``trees``, nodule drawing in ``nodules``.
"""

from ai_engine.synthetic.labels import draw_attributes, p_malignant
from ai_engine.synthetic.patch import make_nodule_patch, make_patch_dataset
from ai_engine.synthetic.phantom import lung_point_mm, make_ct_dataset, make_ct_phantom
from ai_engine.synthetic.truth import NoduleSpec, NoduleTruth, Phantom

__all__ = [
    "NoduleSpec",
    "NoduleTruth",
    "Phantom",
    "draw_attributes",
    "lung_point_mm",
    "make_ct_dataset",
    "make_ct_phantom",
    "make_nodule_patch",
    "make_patch_dataset",
    "p_malignant",
]
