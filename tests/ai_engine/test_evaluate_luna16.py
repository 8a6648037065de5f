"""`evaluate_luna16`: the pipeline on scans written in LUNA16's own format, scored by its rules."""

from __future__ import annotations

import json

import numpy as np
import pytest

from ai_engine.datasets import DatasetError
from ai_engine.evaluate.luna16 import Luna16EvalConfig, evaluate_luna16
from ai_engine.findings import NoduleType, Side, Zone
from ai_engine.pipelines.ct_nodules import analyze_ct_with_marks
from ai_engine.pipelines.models import SHIPPED_WEIGHTS_DIR, CTModels
from ai_engine.synthetic import NoduleSpec, lung_point_mm, make_ct_phantom
from tests.helpers import write_mhd

UID = "1.3.6.1.4.1.14519.5.2.1.6279.6001.105756658031515062000744821260"
SHAPE_ZYX, SPACING_MM, SEED = (128, 256, 256), (0.8, 0.8, 1.25), 11


@pytest.fixture(scope="module")
def luna_tree(tmp_path_factory):
    """One scan with a 10 mm nodule the pipeline finds, a second annotation where there is nothing
    (a miss), and every other candidate of the pipeline (whatever its score) listed in
    annotations_excluded.csv."""
    centre = lung_point_mm(SEED, Side.RIGHT, Zone.MIDDLE, SHAPE_ZYX, SPACING_MM)
    phantom = make_ct_phantom(SEED, SHAPE_ZYX, SPACING_MM, nodule_spec=[NoduleSpec(
        centre_mm=centre, diameter_mm=10.0, nodule_type=NoduleType.SOLID, morphology="round", calcified=False)])
    root = tmp_path_factory.mktemp("luna16")
    (root / "subset0").mkdir()
    write_mhd(phantom.volume, root / "subset0" / f"{UID}.mhd")
    empty = lung_point_mm(SEED, Side.LEFT, Zone.UPPER, SHAPE_ZYX, SPACING_MM)
    (root / "annotations.csv").write_text("seriesuid,coordX,coordY,coordZ,diameter_mm\n"
                                          f"{UID},{centre[0]},{centre[1]},{centre[2]},10.0\n"
                                          f"{UID},{empty[0]},{empty[1]},{empty[2]},6.0\n")
    models = CTModels.load(SHIPPED_WEIGHTS_DIR, "demo")
    findings, every = analyze_ct_with_marks(phantom.volume, models)
    marks = [m.centre_mm for m in every]
    assert len(marks) >= len(findings.nodules)
    others = [m for m in marks if np.linalg.norm(np.subtract(m, centre)) >= 5.0]
    (root / "annotations_excluded.csv").write_text("seriesuid,coordX,coordY,coordZ,diameter_mm\n" + "".join(
        f"{UID},{x},{y},{z},-1\n" for x, y, z in others))
    return root, models, len(marks), len(others)


def test_luna16_scans_are_scored_against_annotations_with_exclusions(luna_tree, tmp_path):
    root, models, n_marks, n_others = luna_tree
    results, json_path, md_path = evaluate_luna16(models, root, tmp_path, Luna16EvalConfig(progress=False))
    match = results.detection.match
    assert (match.n_scans, match.n_nodules, match.true_positives, match.false_negatives) == (1, 2, 1, 1)
    assert match.false_positives == 0 and match.irrelevant_ignored == n_others and n_marks > n_others
    assert results.detection.sensitivity_at_1_fp == pytest.approx(0.5)
    point = results.detection.operating_point  # the findings: the nodule, and nothing at the empty place
    assert (point.true_positives, point.false_negatives, point.false_positives) == (1, 1, 0)
    report = json.loads(json_path.read_text())
    assert report["detection"]["true_positives"] == 1 and "annotations_excluded.csv" in report["dataset"]
    assert report["detection"]["operating_point"]["sensitivity"] == pytest.approx(0.5)
    assert "LUNA16" in md_path.read_text() and (tmp_path / "froc.png").exists()


def test_luna16_without_exclusions_counts_other_marks_as_false_positives(luna_tree, tmp_path):
    root, models, n_marks, n_others = luna_tree
    bare = tmp_path / "bare"
    (bare / "subset0").mkdir(parents=True)
    for f in (root / "subset0").iterdir():
        (bare / "subset0" / f.name).write_bytes(f.read_bytes())
    (bare / "annotations.csv").write_text((root / "annotations.csv").read_text())
    results, _, _ = evaluate_luna16(models, bare, tmp_path / "out", Luna16EvalConfig(progress=False))
    assert results.detection.match.false_positives == n_others
    assert "no annotations_excluded.csv" in results.dataset


def test_luna16_tree_errors_name_the_file(luna_tree, tmp_path):
    root, models, _, _ = luna_tree
    (tmp_path / "subset0").mkdir()
    with pytest.raises(DatasetError, match="no .mhd volumes"):
        evaluate_luna16(models, tmp_path, tmp_path / "out", Luna16EvalConfig(progress=False))
    (tmp_path / "subset0" / f"{UID}.mhd").write_text((root / "subset0" / f"{UID}.mhd").read_text())
    (tmp_path / "annotations.csv").write_text("seriesuid,coordX,coordY,coordZ,diameter_mm\n")
    (tmp_path / "annotations_excluded.csv").write_text(f"seriesuid,coordX,coordY\n{UID},1,2\n")
    with pytest.raises(DatasetError, match="annotations_excluded.csv"):
        evaluate_luna16(models, tmp_path, tmp_path / "out", Luna16EvalConfig(progress=False))
