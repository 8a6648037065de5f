"""Training data: the ``data`` argument ("synthetic", "luna16:PATH", "kaggle-ct:PATH") → TensorSets.

Synthetic data comes from the seeded phantoms in ``ai_engine.synthetic``; each phantom (or nodule
patch) is one simulated patient, so patient-level splits stay honest.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from scipy import ndimage

from ai_engine.findings import NoduleType
from ai_engine.models.inputs import crop_centered, orthogonal_planes, window01
from ai_engine.models.registry import LUNG_WINDOW_HU, SUBTYPE_CLASSES
from ai_engine.train.errors import DataSourceError
from ai_engine.train.loop import TensorSet

KINDS = ("synthetic", "luna16", "kaggle-ct")


@dataclass(frozen=True)
class DataSource:
    kind: str
    path: Path | None = None

    @property
    def name(self) -> str:
        return self.kind


def parse_data(data: str) -> DataSource:
    """Parse "synthetic" / "luna16:PATH" / "kaggle-ct:PATH"; the path must exist."""
    kind, _, path = data.partition(":")
    if kind not in KINDS:
        raise DataSourceError(f"unknown data source {data!r}: expected one of "
                              "'synthetic', 'luna16:PATH', 'kaggle-ct:PATH'")
    if kind == "synthetic":
        return DataSource(kind)
    if not path or not Path(path).exists():
        raise DataSourceError(f"data source {data!r}: path {path!r} does not exist")
    return DataSource(kind, Path(path))


def segmentation_set(source: DataSource, n_cases: int, seed: int, patch: int = 48,
                     phantom_shape_zyx: tuple[int, int, int] = (200, 288, 288)) -> TensorSet:
    """Patches around nodules (jittered) and as many negatives, with nodule masks.

    Synthetic phantoms cover ``phantom_shape_zyx`` mm (≈ a small chest), are "scanned" at a random
    spacing and resampled to 1 mm exactly as inference resamples a CT (see ``_synthetic_case``).
    Images are stored float16 and masks uint8 (a few thousand 48³ patches stay in memory).
    """
    if source.kind == "synthetic":
        cases = (_synthetic_case(seed, i, phantom_shape_zyx) for i in range(n_cases))
    elif source.kind == "luna16":
        cases = _dataset_cases(source, n_cases)
    else:
        raise DataSourceError(f"{source.kind} has no segmentation labels; use synthetic or luna16")
    xs, ys, ids = [], [], []
    rng = np.random.default_rng(seed)
    for pid, image01, mask, lung, centres in cases:
        for c in _patch_centres(rng, centres, image01, mask, lung, patch):
            xs.append(crop_centered(image01, c, (patch,) * 3).astype(np.float16))
            ys.append(crop_centered(mask, c, (patch,) * 3))
            ids.append(pid)
    return TensorSet(torch.from_numpy(np.stack(xs))[:, None], torch.from_numpy(np.stack(ys))[:, None],
                     tuple(ids))


# a U-Net that had only seen 0.7–1.0 mm let 2.2 FPs/scan through on 1.25 mm scans
IN_PLANE_SPACING_MM = (0.7, 1.4)
# ground-glass and part-solid edges are the faint ones (their Dice lagged the solid nodules' by 0.2)
SMALL_NODULE_TYPES = ((NoduleType.SOLID, 0.4), (NoduleType.PART_SOLID, 0.3), (NoduleType.GROUND_GLASS, 0.3))


@dataclass(frozen=True)
class SmallNodules:
    """The extra small nodules of a training phantom: how many (inclusive range), how large (the
    smallest diameter, 6 mm for part-solid, plus U(0, span_mm)) and of which types (weights)."""

    count: tuple[int, int] = (1, 3)
    span_mm: float = 6.0
    types: tuple[tuple[NoduleType, float], ...] = SMALL_NODULE_TYPES
    central: float = 0.0  # share placed near the hilum, against the large vessels and bronchi


def _synthetic_case(seed: int, i: int, extent_mm: tuple[int, int, int], small: SmallNodules = SmallNodules()
                    ) -> tuple[str, np.ndarray, np.ndarray, np.ndarray, list]:
    """One phantom: extra small nodules (``small``; by default 1–3 of 4–10 mm, part-solid 6–12 mm) besides
    0–2 drawn from the label model, since small ones are what a detector misses; in-plane spacing U(0.7, 1.4) mm and
    slices of 1–2 mm, resampled to 1 mm as inference does (linear image; the target mask is the
    linearly resampled mask ≥ 0.5, the nearest-resampled labels only locate the nodules)."""
    from ai_engine.preprocess import VolumeGeometry, resample_isotropic, resample_to_reference
    from ai_engine.synthetic import NoduleSpec, make_ct_phantom

    rng = np.random.default_rng([seed, i])
    sxy, sz = float(rng.uniform(*IN_PLANE_SPACING_MM)), float(rng.choice([1.0, 1.25, 1.5, 2.0]))
    shape = (int(extent_mm[0] / sz), int(extent_mm[1] / sxy), int(extent_mm[2] / sxy))
    kinds, weights = zip(*small.types)
    specs = []
    for k in rng.choice(len(kinds), size=int(rng.integers(small.count[0], small.count[1] + 1)), p=weights):
        low = 6.0 if kinds[k] == NoduleType.PART_SOLID else 4.0
        placement = "central" if small.central and rng.random() < small.central else None  # default: no draw
        specs.append(NoduleSpec(diameter_mm=float(rng.uniform(low, low + small.span_mm)), nodule_type=kinds[k],
                                placement=placement))
    specs += [NoduleSpec() for _ in range(int(rng.integers(0, 3)))]
    ph = make_ct_phantom(seed=int(rng.integers(2**31)), shape_zyx=shape, spacing_mm=(sxy, sxy, sz),
                         nodule_spec=specs)
    iso = resample_isotropic(ph.volume, 1.0)
    src, ref = VolumeGeometry.of(ph.volume), VolumeGeometry.of(iso)
    labels = resample_to_reference(np.asarray(ph.nodule_mask).astype(np.uint16), src, ref, "nearest")
    # the target is the linearly resampled mask ≥ 0.5: nearest-neighbour from 1–2 mm slices puts its
    # edge up to half a slice off the surface, and a U-Net trained on that over-segmented a sphere
    mask = resample_to_reference(np.asarray(ph.nodule_mask) > 0, src, ref, "linear") >= 0.5
    lung = resample_to_reference(np.asarray(ph.lung_mask).astype(np.uint8), src, ref, "nearest") > 0
    centres = [np.argwhere(labels == k).mean(axis=0) for k in np.unique(labels[labels > 0])]
    return f"synthetic-{seed}-{i}", window01(iso.hu, LUNG_WINDOW_HU), mask.astype(np.uint8), lung, centres


VESSEL_LEVEL = (-500.0 - LUNG_WINDOW_HU[0]) / (LUNG_WINDOW_HU[1] - LUNG_WINDOW_HU[0])  # -500 HU in [0, 1]
NODULE_CLEARANCE_VOXELS = 8


def _patch_centres(rng: np.random.Generator, centres: list, image01: np.ndarray, mask: np.ndarray,
                   lung: np.ndarray, patch: int) -> list:
    """Two jittered patches per nodule and as many negatives (at least 4): a quarter anywhere in the
    lungs, the rest centred on dense lung voxels (vessels, airway walls), where a detector's false
    positives are; negatives stay 8 voxels clear of every nodule."""
    out = [np.asarray(c) + rng.uniform(-patch / 4, patch / 4, 3) for c in centres for _ in range(2)]
    free = lung & ~ndimage.binary_dilation(mask > 0, iterations=NODULE_CLEARANCE_VOXELS)
    anywhere = np.argwhere(free)
    if not len(anywhere):
        return out
    dense = np.argwhere(free & (image01 > VESSEL_LEVEL))
    n_neg = max(4, len(out))
    n_any = n_neg // 4 if len(dense) else n_neg
    out += [anywhere[k] for k in rng.integers(len(anywhere), size=n_any)]
    if len(dense):
        out += [dense[k] for k in rng.integers(len(dense), size=n_neg - n_any)]
    return out


def malignancy_set(source: DataSource, n_cases: int, seed: int, with_margin: bool = False) -> TensorSet:
    """64³ nodule patches at 1 mm, label 1 = malignant; half the synthetic cases malignant.
    Images are stored float16 (0.5 MB a patch, so ten thousand fit in memory); the loop casts.
    ``with_margin`` (synthetic only) makes y [N, 2]: malignant, and the margin's index in
    ``MORPHOLOGIES`` (round, lobulated, spiculated), for training with an auxiliary margin head."""
    if source.kind != "synthetic":
        return _dataset_patches(source, n_cases, seed, task="malignancy")
    from ai_engine.synthetic import make_nodule_patch
    from ai_engine.synthetic.truth import MORPHOLOGIES

    xs, ys, ids = [], [], []
    for i in range(n_cases):
        patch, truth = make_nodule_patch(seed=case_seed(seed, i), malignant=bool(i % 2))
        xs.append(window01(patch, LUNG_WINDOW_HU).astype(np.float16))
        ys.append([int(truth.malignant), MORPHOLOGIES.index(truth.morphology)] if with_margin else int(truth.malignant))
        ids.append(f"synthetic-{seed}-{i}")
    return TensorSet(torch.from_numpy(np.stack(xs))[:, None], torch.tensor(ys), tuple(ids))


def cached_set(cache: str | None, make: Callable[[], TensorSet]) -> TensorSet:
    """``make()``, saved to ``cache`` the first time and loaded from it after (so a second run, or the
    other ensemble member, skips generating the patches); no cache path: just ``make()``."""
    if cache and Path(cache).exists():
        saved = torch.load(cache)  # tensors and a list of ids only, so the default weights_only load works
        return TensorSet(saved["x"], saved["y"], tuple(saved["ids"]))
    data = make()
    if cache:
        torch.save({"x": data.x, "y": data.y, "ids": list(data.patient_ids)}, cache)
    return data


def subtype_set(source: DataSource, n_cases: int, seed: int) -> TensorSet:
    """2.5D inputs (3 orthogonal planes) of malignant nodules, label = subtype index; from the Kaggle
    chest CT set, its slices (``kaggle_subtype_set``)."""
    if source.kind != "synthetic":
        return _dataset_patches(source, n_cases, seed, task="subtype")
    from ai_engine.findings import Subtype
    from ai_engine.synthetic import make_nodule_patch

    xs, ys, ids = [], [], []
    for i in range(n_cases):
        subtype = Subtype(SUBTYPE_CLASSES[i % len(SUBTYPE_CLASSES)])
        patch, truth = make_nodule_patch(seed=case_seed(seed, i), malignant=True, subtype=subtype)
        xs.append(orthogonal_planes(window01(patch, LUNG_WINDOW_HU)))
        ys.append(SUBTYPE_CLASSES.index(Subtype(truth.subtype).value))
        ids.append(f"synthetic-{seed}-{i}")
    return TensorSet(torch.from_numpy(np.stack(xs)), torch.tensor(ys), tuple(ids))


def case_seed(seed: int, i: int) -> int:
    """The seed of case ``i`` of a set drawn with ``seed`` (also the GPU recipe's patch streams)."""
    return int(np.random.default_rng([seed, i, 7]).integers(2**31))


def _dataset_cases(source: DataSource, n_cases: int):
    """LUNA16 scans (one patient each) at 1 mm with their annotation spheres as the nodule masks."""
    from ai_engine.datasets import DatasetError, Luna16Dataset, sphere_mask, world_to_voxel
    from ai_engine.preprocess import lung_mask, resample_isotropic

    try:
        dataset = Luna16Dataset(source.path)
    except DatasetError as exc:
        raise DataSourceError(f"luna16:{source.path}: {exc}") from None
    for uid in dataset.seriesuids[:n_cases]:
        case = dataset.load(uid)
        iso = resample_isotropic(case.volume, 1.0)
        centres = [world_to_voxel(iso, (a.x_mm, a.y_mm, a.z_mm)) for a in case.annotations]
        mask = (sphere_mask(iso, case.annotations) > 0).astype(np.uint8)
        yield uid, window01(iso.hu, LUNG_WINDOW_HU), mask, lung_mask(iso), centres


def _dataset_patches(source: DataSource, n_cases: int, seed: int, task: str) -> TensorSet:
    from ai_engine.datasets import DatasetError

    if (source.kind, task) == ("kaggle-ct", "subtype"):
        try:
            return kaggle_subtype_set(source, n_cases, seed)
        except DatasetError as exc:  # names the file and field
            raise DataSourceError(f"kaggle-ct:{source.path}: {exc}") from None
    why = {("luna16", "malignancy"): "LUNA16's annotations.csv gives nodule positions and diameters, no "
                                     "malignancy label",
           ("luna16", "subtype"): "LUNA16 has no histological subtype labels",
           ("kaggle-ct", "malignancy"): "the Kaggle chest CT set is 2D slices filed by cancer type (or normal), "
                                        "not 3D nodule patches with a malignancy label; it trains subtype"}[(source.kind, task)]
    raise DataSourceError(f"{source.kind}:{source.path}: cannot train {task}: {why}")


def kaggle_subtype_set(source: DataSource, n_cases: int, seed: int, size: int = 64) -> TensorSet:
    """Kaggle chest CT slices of the three cancer folders, as the subtype network's input: grey
    levels / 255 (the PNGs are already windowed), resized to ``size``², repeated into its 3 channels.
    "normal" slices have no subtype and are left out. At most ``n_cases`` slices, drawn at random
    (seed) when there are more. The set names no patients, so each slice is its own "patient" and
    slices of one patient can fall on both sides of a split."""
    from PIL import Image

    from ai_engine.datasets import KAGGLE_CLASSES, KAGGLE_SUBTYPE_OF, KaggleChestCT
    from ai_engine.datasets.images import load_image

    samples = [s for s in KaggleChestCT(source.path).samples if KAGGLE_SUBTYPE_OF[KAGGLE_CLASSES[s.label]]]
    if not samples:
        raise DataSourceError(f"kaggle-ct:{source.path}: no slices in the adenocarcinoma, large cell or "
                              "squamous cell carcinoma folders (normal slices have no subtype)")
    if len(samples) > n_cases:
        keep = np.random.default_rng(seed).choice(len(samples), n_cases, replace=False)
        samples = [samples[i] for i in sorted(keep)]
    xs, ys, ids = [], [], []
    for sample in samples:
        grey = Image.fromarray(load_image(sample.path)).resize((size, size), Image.BILINEAR)
        xs.append(np.repeat(np.asarray(grey, np.float32)[None] / 255.0, 3, axis=0))
        ys.append(SUBTYPE_CLASSES.index(KAGGLE_SUBTYPE_OF[KAGGLE_CLASSES[sample.label]].value))
        ids.append(str(sample.path.relative_to(source.path)))
    return TensorSet(torch.from_numpy(np.stack(xs)), torch.tensor(ys), tuple(ids))
