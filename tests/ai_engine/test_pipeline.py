"""The CT nodule pipeline with the shipped demo weights, on synthetic phantoms."""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch

from ai_engine.findings import SYNTHETIC_DISCLAIMER, NoduleType, Side, Zone
from ai_engine.models import WeightsIntegrityError
from ai_engine.pipelines import CTModels, PipelineConfig, analyze_ct, inference
from ai_engine.pipelines.models import SHIPPED_WEIGHTS_DIR
from ai_engine.synthetic import NoduleSpec, lung_point_mm, make_ct_phantom

SHAPE_ZYX = (128, 256, 256)
SPACING_MM = (0.8, 0.8, 1.25)  # (x, y, z): anisotropic, as scanners deliver
SEED = 11


@pytest.fixture(scope="module")
def models() -> CTModels:
    return CTModels.load(SHIPPED_WEIGHTS_DIR, "demo")


@pytest.fixture(scope="module")
def sphere():
    centre = lung_point_mm(SEED, Side.RIGHT, Zone.MIDDLE, SHAPE_ZYX, SPACING_MM)
    spec = NoduleSpec(centre_mm=centre, diameter_mm=10.0, nodule_type=NoduleType.SOLID, morphology="round",
                      calcified=False)
    return make_ct_phantom(SEED, SHAPE_ZYX, SPACING_MM, nodule_spec=[spec])


@pytest.fixture(scope="module")
def sphere_findings(sphere, models):
    return analyze_ct(sphere.volume, models)


def test_a_10mm_sphere_is_found_and_measured(sphere, sphere_findings):
    truth = sphere.nodules[0]
    assert sphere_findings.nodules, "the 10 mm nodule was not detected"
    best = max(sphere_findings.nodules, key=lambda n: n.detection_score)
    offset_mm = np.linalg.norm(np.subtract(best.centroid_mm, truth.centre_mm))
    assert offset_mm <= 1.0
    assert abs(best.volume_mm3 - truth.volume_mm3) <= 0.15 * truth.volume_mm3
    assert 8.5 <= best.mean_diameter_mm <= 11.5
    assert best.nodule_type == NoduleType.SOLID and best.side == Side.RIGHT
    mask = sphere_findings.label_mask
    assert mask.shape == sphere.volume.hu.shape and mask.dtype == np.uint16
    assert int(np.count_nonzero(mask == best.label)) * np.prod(SPACING_MM) == pytest.approx(best.volume_mm3)


def test_findings_carry_classification_lung_rads_models_and_timings(sphere_findings):
    n = max(sphere_findings.nodules, key=lambda n: n.detection_score)
    assert 0.0 <= n.malignancy_probability <= 1.0
    assert [name for name, _ in n.malignancy_by_model] == ["densenet121-3d", "convnext-tiny-3d"]
    assert n.malignancy_probability == pytest.approx(np.mean([p for _, p in n.malignancy_by_model]))
    assert (n.subtype is not None) == n.malignant
    assert n.lung_rads is not None and n.lung_rads.category in {"2", "3", "4A", "4B", "4X"}
    assert sphere_findings.exam_lung_rads.category == max(
        (x.lung_rads.category for x in sphere_findings.nodules), key=["1", "2", "3", "4A", "4B", "4X"].index)
    assert {m.name for m in sphere_findings.models} == {"unet3d", "densenet121-3d", "convnext-tiny-3d",
                                                         "efficientnet-b3"}
    assert all(m.synthetic and m.trained_on == "synthetic" and len(m.sha256) == 64 for m in sphere_findings.models)
    assert sphere_findings.disclaimer == SYNTHETIC_DISCLAIMER
    assert {"resample", "lung_mask", "segmentation", "candidates", "measure", "malignancy", "lung_rads"} <= set(
        sphere_findings.timings_s)


def test_outputs_are_frozen(sphere_findings):
    with pytest.raises(dataclasses.FrozenInstanceError):
        sphere_findings.nodules = ()
    with pytest.raises(dataclasses.FrozenInstanceError):
        sphere_findings.nodules[0].volume_mm3 = 1.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        sphere_findings.exam_lung_rads.category = "1"


def test_lungs_without_nodules_give_no_or_low_findings(models):
    empty = make_ct_phantom(SEED + 1, SHAPE_ZYX, SPACING_MM, n_nodules=0)
    findings = analyze_ct(empty.volume, models)
    assert len(findings.nodules) <= 1
    assert findings.exam_lung_rads.category in {"1", "2"}
    assert int(np.count_nonzero(findings.label_mask)) * np.prod(SPACING_MM) < 500.0


def test_models_refuse_tampered_weights(tmp_path):
    shutil.copytree(SHIPPED_WEIGHTS_DIR, tmp_path / "w")
    weights = tmp_path / "w" / "convnext-tiny-3d-demo.pt"
    data = bytearray(weights.read_bytes())
    data[1000] ^= 0x01
    weights.write_bytes(bytes(data))
    with pytest.raises(WeightsIntegrityError, match="convnext-tiny-3d-demo.pt"):
        CTModels.load(tmp_path / "w", "demo")


def test_ai_engine_imports_no_service_or_network_module():
    code = (
        "import sys, pkgutil, importlib, ai_engine\n"
        "for m in pkgutil.walk_packages(ai_engine.__path__, 'ai_engine.'):\n"
        "    importlib.import_module(m.name)\n"
        "bad = sorted(k for k in sys.modules if k.split('.')[0] in "
        "{'pynetdicom', 'sqlalchemy', 'httpx', 'fastapi', 'dicom_node'})\n"
        "print(len([k for k in sys.modules if k.startswith('ai_engine.')]), bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    n_modules, bad = out.stdout.split(" ", 1)
    assert int(n_modules) > 20 and bad.strip() == "[]", out.stdout


def test_config_can_force_fp32(sphere, models):
    findings = analyze_ct(sphere.volume, models, PipelineConfig(bf16=False))
    assert findings.nodules and max(n.detection_score for n in findings.nodules) > 0.5



def test_the_plain_pass_alone_uses_its_own_detection_threshold(sphere, models):
    from dataclasses import replace

    from ai_engine.pipelines.ct_nodules import detection_thresholds

    seg = models.segmentation
    spec = seg.card.input_spec.with_thresholds(detection=0.2, detection_plain_pass=0.9)
    assert detection_thresholds(spec, tta=True)["detection"] == 0.2
    assert detection_thresholds(spec, tta=False)["detection"] == 0.9
    assert detection_thresholds(replace(spec, tta_flips=()), tta=False)["detection"] == 0.2  # no mirrors: one threshold
    older = replace(spec, thresholds={k: v for k, v in spec.thresholds.items() if k != "detection_plain_pass"})
    assert detection_thresholds(older, tta=False)["detection"] == 0.2

    strict = spec.with_thresholds(detection=0.0, detection_plain_pass=1.01)  # no probability reaches it
    strict_models = replace(models, segmentation=replace(seg, card=replace(seg.card, input_spec=strict)))
    assert not analyze_ct(sphere.volume, strict_models, PipelineConfig(tta=False)).nodules


def test_marks_cover_every_candidate_whatever_the_detection_threshold(sphere, models):
    """LUNA16 scores all of a system's candidates: the marks do not stop at the operating point."""
    from dataclasses import replace

    from ai_engine.pipelines.ct_nodules import analyze_ct_with_marks

    findings, marks = analyze_ct_with_marks(sphere.volume, models, PipelineConfig(tta=False))
    alone = analyze_ct(sphere.volume, models, PipelineConfig(tta=False))  # the findings, labelled on their own
    assert np.array_equal(findings.label_mask, alone.label_mask)
    assert [n.detection_score for n in findings.nodules] == [n.detection_score for n in alone.nodules]
    truth = sphere.nodules[0]
    near = [m for m in marks if np.linalg.norm(np.subtract(m.centre_mm, truth.centre_mm)) <= 1.0]
    best = max(findings.nodules, key=lambda n: n.detection_score)
    assert len(near) == 1 and near[0].score == best.detection_score
    assert {n.detection_score for n in findings.nodules} <= {m.score for m in marks}
    assert list(marks) == sorted(marks, key=lambda m: -m.score)

    seg = models.segmentation
    strict = seg.card.input_spec.with_thresholds(detection_plain_pass=1.01)  # no finding at all
    strict_models = replace(models, segmentation=replace(seg, card=replace(seg.card, input_spec=strict)))
    none, same = analyze_ct_with_marks(sphere.volume, strict_models, PipelineConfig(tta=False))
    assert not none.nodules and same == marks


def test_config_can_skip_the_mirrored_unet_passes(sphere, models, monkeypatch):
    seen = []
    run = inference.segment_probability
    monkeypatch.setattr(inference, "segment_probability", lambda *a, **k: seen.append(a[2].tta_flips) or run(*a, **k))
    plain = analyze_ct(sphere.volume, models, PipelineConfig(tta=False))
    assert seen == [()]  # the plain pass only, whatever the card asks for
    truth = sphere.nodules[0]
    best = max(plain.nodules, key=lambda n: n.detection_score)
    assert np.linalg.norm(np.subtract(best.centroid_mm, truth.centre_mm)) <= 1.0
    assert abs(best.volume_mm3 - truth.volume_mm3) <= 0.15 * truth.volume_mm3


def test_the_unet_runs_channels_last_as_the_registry_asks(sphere, models, monkeypatch):
    from ai_engine.models.registry import entry

    layouts = []
    run = inference.segment_probability

    def spy(image01, net, *args, **kwargs):
        convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv3d) and m.in_channels > 1]
        layouts.append({m.weight.is_contiguous(memory_format=torch.channels_last_3d) for m in convs})
        return run(image01, net, *args, **kwargs)

    monkeypatch.setattr(inference, "segment_probability", spy)
    analyze_ct(sphere.volume, models, PipelineConfig(tta=False))
    assert entry("unet3d").channels_last
    assert layouts == [{True}]
