"""Evaluation metrics against small hand-computed examples, and the written report."""

import json

import numpy as np
import pytest

from ai_engine.evaluate import (
    Annotation,
    Candidate,
    EvaluationError,
    EvaluationResults,
    SegmentationResult,
    classification_metrics,
    confusion_matrix,
    cpm,
    dice,
    dice_per_nodule,
    evaluate_classification,
    evaluate_detection,
    froc_bootstrap,
    froc_curve,
    match_candidates,
    roc_auc,
    roc_auc_interval,
    roc_curve,
    write_report,
)
from ai_engine.findings import ModelInfo

# --- Dice -------------------------------------------------------------------------------------


def test_dice_hand_computed():
    a = np.zeros((4, 4, 4), bool)
    b = np.zeros((4, 4, 4), bool)
    a[0, 0, :4] = True  # 4 voxels
    b[0, 0, 2:4] = True  # 2 voxels, both inside a
    assert dice(a, b) == pytest.approx(2 * 2 / 6)
    assert dice(a, a) == 1.0
    assert dice(a, np.zeros_like(a)) == 0.0
    assert dice(np.zeros_like(a), np.zeros_like(a)) == 1.0


def test_dice_shape_mismatch_is_an_error():
    with pytest.raises(EvaluationError, match="shape"):
        dice(np.zeros((2, 2)), np.zeros((2, 3)))


def test_dice_per_nodule_ignores_unrelated_false_positives():
    ref = np.zeros((10, 10, 10), np.uint16)
    ref[1:3, 1:3, 1:3] = 1  # 8 voxels
    ref[6:8, 6:8, 6:8] = 2  # 8 voxels, missed
    pred = np.zeros_like(ref, dtype=bool)
    pred[1:3, 1:3, 1:2] = True  # 4 voxels inside nodule 1
    pred[1:3, 8:10, 8:10] = True  # far false positive
    per = {n.label: n for n in dice_per_nodule(pred, ref)}
    assert per[1].dice == pytest.approx(2 * 4 / 12) and per[1].detected
    assert per[2].dice == 0.0 and not per[2].detected
    assert per[1].volume_voxels == 8
    binary = dice_per_nodule(pred, ref > 0)  # binary reference is split into components
    assert sorted(round(n.dice, 6) for n in binary) == [0.0, round(8 / 12, 6)]


# --- detection matching (LUNA16 rule) ----------------------------------------------------------


def _luna_example():
    nodules = [Annotation("A", 0, 0, 0, 10.0), Annotation("A", 50, 0, 0, 6.0),
               Annotation("B", 0, 0, 0, 8.0)]
    irrelevant = [Annotation("B", 30, 30, 30, -1.0)]  # no diameter -> 10 mm, as LUNA16
    cands = [
        Candidate("A", 1, 1, 1, 0.9),     # hits nodule A1
        Candidate("A", 0, 0, 4, 0.5),     # second hit on A1: ignored
        Candidate("A", 50, 0, 3, 0.3),    # exactly on A2's radius: not a hit (strict <) -> FP
        Candidate("A", 100, 0, 0, 0.8),   # FP
        Candidate("B", 0, 0, 3.9, 0.6),   # hits B1
        Candidate("B", 33, 30, 30, 0.95), # on the irrelevant finding: ignored
        Candidate("B", -50, 0, 0, 0.4),   # FP
    ]
    return nodules, irrelevant, cands


def test_match_counts_follow_luna16():
    nodules, irrelevant, cands = _luna_example()
    m = match_candidates(nodules, cands, ["A", "B", "C"], irrelevant)
    assert (m.true_positives, m.false_positives, m.false_negatives) == (2, 3, 1)
    assert (m.double_detections_ignored, m.irrelevant_ignored) == (1, 1)
    assert m.n_nodules == 3 and m.sensitivity == pytest.approx(2 / 3)
    assert m.missed == (Annotation("A", 50, 0, 0, 6.0),)  # the one nodule no candidate hit
    # without the irrelevant list that candidate is a false positive
    assert match_candidates(nodules, cands, ["A", "B", "C"]).false_positives == 4


def test_froc_and_cpm_hand_computed():
    """Kept: 0.9 T, 0.8 F, 0.6 T, 0.4 F, 0.3 F over 3 scans, 3 nodules.

    FROC vertices (FPs/scan, sens): (0,0) (0,1/3) (1/3,1/3) (1/3,2/3) (1,2/3); at 1/8 and 1/4
    the sensitivity is 1/3, from 1/2 on it is 2/3: CPM = (2/3 + 10/3) / 7 = 4/7.
    """
    nodules, irrelevant, cands = _luna_example()
    result = evaluate_detection(nodules, cands, ["A", "B", "C"], irrelevant)
    np.testing.assert_allclose(result.froc.fps_per_scan, [0, 0, 1 / 3, 1 / 3, 1])
    np.testing.assert_allclose(result.froc.sensitivity, [0, 1 / 3, 1 / 3, 2 / 3, 2 / 3])
    np.testing.assert_allclose(result.cpm.sensitivities, [1 / 3, 1 / 3] + [2 / 3] * 5)
    assert result.cpm.score == pytest.approx(4 / 7)
    assert result.sensitivity_at_1_fp == pytest.approx(2 / 3)


def test_cpm_interpolates_between_froc_points():
    """Tied TP/FP scores give a sloped segment: (0,0) (0,.5) (.5,1) (1.5,1).

    Sensitivity at 1/8 = .5 + .125/.5 x .5 = .625, at 1/4 = .75, then 1: CPM = 6.375 / 7.
    """
    nodules = [Annotation("A", 0, 0, 0, 10), Annotation("B", 0, 0, 0, 10)]
    cands = [Candidate("A", 0, 0, 0, 0.9), Candidate("B", 0, 0, 0, 0.7),
             Candidate("A", 40, 0, 0, 0.7), Candidate("A", 80, 0, 0, 0.2),
             Candidate("B", 80, 0, 0, 0.1)]
    curve = froc_curve(match_candidates(nodules, cands, ["A", "B"]))
    np.testing.assert_allclose(curve.fps_per_scan, [0, 0, 0.5, 1.5])
    np.testing.assert_allclose(curve.sensitivity, [0, 0.5, 1, 1])
    score = cpm(curve)
    np.testing.assert_allclose(score.sensitivities, [0.625, 0.75, 1, 1, 1, 1, 1])
    assert score.score == pytest.approx(6.375 / 7)


def test_froc_without_false_positives_and_without_candidates():
    nodules = [Annotation("A", 0, 0, 0, 10), Annotation("A", 30, 0, 0, 10)]
    only_tp = froc_curve(match_candidates(nodules, [Candidate("A", 0, 0, 0, 0.5)], ["A"]))
    assert cpm(only_tp).score == pytest.approx(0.5)
    empty = froc_curve(match_candidates(nodules, [], ["A"]))
    assert cpm(empty).score == 0.0


def test_bootstrap_of_identical_scans_has_no_spread():
    """Every resample of identical scans is the original set: mean = curve, bounds collapse."""
    uids = ["A", "B", "C", "D"]
    nodules = [Annotation(u, 0, 0, 0, 10) for u in uids]
    cands = [c for u in uids for c in (Candidate(u, 0, 0, 0, 0.9), Candidate(u, 50, 0, 0, 0.8))]
    match = match_candidates(nodules, cands, uids)
    boot = froc_bootstrap(match, n_samples=50, seed=1)
    np.testing.assert_allclose(boot.lower, boot.upper)
    np.testing.assert_allclose(boot.mean, np.interp(boot.fps_per_scan, *_curve_xy(match)))
    assert boot.cpm().score == pytest.approx(cpm(froc_curve(match)).score, abs=1e-3)


def _curve_xy(match):
    curve = froc_curve(match)
    return curve.fps_per_scan, curve.sensitivity


def test_bootstrap_bounds_bracket_the_mean_and_are_reproducible():
    nodules, irrelevant, cands = _luna_example()
    match = match_candidates(nodules, cands, ["A", "B", "C"], irrelevant)
    a = froc_bootstrap(match, n_samples=200, seed=5)
    assert a == froc_bootstrap(match, n_samples=200, seed=5)
    lower, mean, upper = map(np.array, (a.lower, a.mean, a.upper))
    assert (lower <= mean + 1e-12).all() and (mean <= upper + 1e-12).all()
    assert (upper - lower).max() > 0.1  # three scans: resampling changes the curve a lot


def test_detection_input_errors():
    with pytest.raises(EvaluationError, match="seriesuids"):
        match_candidates([], [], [])
    with pytest.raises(EvaluationError, match="not in seriesuids"):
        match_candidates([], [Candidate("Z", 0, 0, 0, 1)], ["A"])


# --- classification ---------------------------------------------------------------------------


def test_classification_metrics_hand_computed():
    y_true, y_pred = [0, 0, 1, 1, 2, 2], [0, 1, 1, 1, 2, 0]
    m = classification_metrics(y_true, y_pred, ["a", "b", "c"])
    assert m.confusion == ((1, 1, 0), (0, 2, 0), (1, 0, 1))
    assert m.accuracy == pytest.approx(4 / 6)
    precision = [p.precision for p in m.per_class]
    recall = [p.recall for p in m.per_class]
    f1 = [p.f1 for p in m.per_class]
    np.testing.assert_allclose(precision, [1 / 2, 2 / 3, 1])
    np.testing.assert_allclose(recall, [1 / 2, 1, 1 / 2])
    np.testing.assert_allclose(f1, [0.5, 0.8, 2 / 3])
    assert m.macro_f1 == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
    assert [p.support for p in m.per_class] == [2, 2, 2]


def test_class_never_predicted_has_zero_precision():
    m = classification_metrics([0, 1], [0, 0], ["a", "b"])
    assert m.per_class[1].precision == 0.0 and m.per_class[1].f1 == 0.0


def test_confusion_matrix_rejects_bad_labels():
    with pytest.raises(EvaluationError, match="outside"):
        confusion_matrix([0, 3], [0, 1], 3)
    with pytest.raises(EvaluationError, match="labels but"):
        confusion_matrix([0, 1], [0], 2)


def test_roc_auc_by_ranking():
    assert roc_auc([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9]) == 1.0
    assert roc_auc([0, 0, 1, 1], [0.9, 0.8, 0.2, 0.1]) == 0.0
    assert roc_auc([0, 1, 0, 1], [0.5, 0.5, 0.5, 0.5]) == 0.5
    # pairs: (.8>.4) (.8>.2) (.4=.4 -> 1/2) (.4>.2) -> 3.5 / 4
    assert roc_auc([1, 0, 1, 0], [0.8, 0.4, 0.4, 0.2]) == pytest.approx(0.875)
    with pytest.raises(EvaluationError, match="one positive and one negative"):
        roc_auc([1, 1], [0.2, 0.3])


def test_average_ranks_share_ties():
    from ai_engine.evaluate.classification import average_ranks

    ranks = average_ranks(np.array([0.3, 0.1, 0.3, 0.9, 0.3]))
    np.testing.assert_allclose(ranks, [3, 1, 3, 5, 3])


def test_roc_auc_matches_pair_counting_on_random_data():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 200)
    scores = np.round(rng.random(200) + labels * 0.3, 1)  # rounding makes many ties
    pos, neg = scores[labels == 1], scores[labels == 0]
    pairs = (pos[:, None] > neg[None, :]).sum() + 0.5 * (pos[:, None] == neg[None, :]).sum()
    assert roc_auc(labels, scores) == pytest.approx(pairs / (pos.size * neg.size))
    roc = roc_curve(labels, scores)
    assert np.trapezoid(roc.tpr, roc.fpr) == pytest.approx(roc.auc)


def test_roc_auc_interval_brackets_the_auc_and_narrows_with_more_cases():
    assert roc_auc_interval([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9], n_samples=50) == (1.0, 1.0)  # no overlap to resample
    widths = []
    for n in (100, 2000):
        rng = np.random.default_rng(n)
        labels = rng.integers(0, 2, n)
        scores = rng.random(n) + labels * 0.5
        lo, hi = roc_auc_interval(labels, scores, n_samples=300, seed=3)
        assert lo < roc_auc(labels, scores) < hi and (lo, hi) == roc_auc_interval(labels, scores, 300, seed=3)
        widths.append(hi - lo)
    assert widths[1] < widths[0] / 2  # ~1/sqrt(n): 20× the cases, about a quarter of the width
    with pytest.raises(EvaluationError, match="one positive and one negative"):
        roc_auc_interval([1, 1], [0.2, 0.3])


def test_roc_curve_points():
    roc = roc_curve([1, 0, 1, 0], [0.8, 0.4, 0.4, 0.2])
    np.testing.assert_allclose(roc.fpr, [0, 0, 0.5, 1])
    np.testing.assert_allclose(roc.tpr, [0, 0.5, 1, 1])
    assert roc.thresholds[0] == np.inf and roc.auc == pytest.approx(0.875)
    assert np.trapezoid(roc.tpr, roc.fpr) == pytest.approx(roc.auc)


# --- report -----------------------------------------------------------------------------------

SYNTH = ModelInfo("unet3d", "0.1.0", "ab" * 32, "demo", "synthetic", True)
REAL = ModelInfo("densenet121-3d", "0.1.0", "cd" * 32, "paper", "LUNA16", False)


def _results(models):
    nodules, irrelevant, cands = _luna_example()
    return EvaluationResults(
        dataset="hand-made example",
        models=models,
        detection=evaluate_detection(nodules, cands, ["A", "B", "C"], irrelevant, bootstrap_samples=100),
        segmentation=SegmentationResult((("case-1", 0.75), ("case-2", 0.25))),
        classification=(
            evaluate_classification("malignancy", [1, 0, 1, 0], [1, 0, 0, 0], ["benign", "malignant"],
                                    positive_scores=[0.8, 0.4, 0.4, 0.2], bootstrap_samples=200),
            evaluate_classification("subtype", [0, 0, 1, 1, 2, 2], [0, 1, 1, 1, 2, 0], ["a", "b", "c"]),
        ),
    )


def test_write_report_synthetic(tmp_path):
    json_path, md_path = write_report(_results((SYNTH, REAL)), tmp_path / "out", "Demo evaluation")
    data = json.loads(json_path.read_text())
    assert data["synthetic_trained"] is True
    assert data["detection"]["cpm"] == pytest.approx(4 / 7)
    assert data["detection"]["sensitivity_at_1_fp_per_scan"] == pytest.approx(2 / 3)
    assert data["detection"]["bootstrap"]["n_samples"] == 100
    assert "CPM of the bootstrapped mean FROC (100 samples)" in md_path.read_text()
    assert data["segmentation"]["mean_case_dice"] == pytest.approx(0.5)
    malignancy, subtype = data["classification"]
    assert malignancy["roc_auc"] == pytest.approx(0.875)
    lo, hi = malignancy["roc_auc_interval_95"]
    assert 0.0 <= lo < 0.875 and hi == 1.0 and "roc_auc_interval_95" not in subtype
    bounds = data["detection"]["bootstrap"]
    assert bounds["sensitivity_lower"]["1.0"] <= 2 / 3 <= bounds["sensitivity_upper"]["1.0"]
    assert subtype["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
    assert [m["name"] for m in data["models"]] == ["unet3d", "densenet121-3d"]
    md = md_path.read_text()
    assert "Models trained on synthetic phantoms" in md
    assert "| unet3d | 0.1.0 |" in md and "| densenet121-3d | 0.1.0 |" in md
    assert "0.5714" in md and "0.8750" in md and "0.6667" in md
    assert f"- ROC AUC: 0.8750 (95% bootstrap interval {lo:.4f}–1.0000)" in md
    assert data["detection"]["missed_nodules"] == [{"seriesuid": "A", "x_mm": 50, "y_mm": 0, "z_mm": 0, "diameter_mm": 6.0}]
    assert "| A | 50.0 | 0.0 | 0.0 | 6.0 |" in md.split("### Missed nodules")[1]
    one_fp = next(line for line in md.splitlines() if line.startswith("| sensitivity at 1.0 FP/scan |"))
    assert "(95% bootstrap interval " in one_fp
    for png in ("froc.png", "roc_malignancy.png", "confusion_subtype.png", "confusion_malignancy.png"):
        assert (tmp_path / "out" / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"]({png})" in md


def test_the_report_gives_the_operating_point_beside_the_froc_of_every_candidate(tmp_path):
    nodules, irrelevant, cands = _luna_example()
    reported = [c for c in cands if c.probability >= 0.7]  # the findings above a detection threshold of 0.7
    detection = evaluate_detection(nodules, cands, ["A", "B", "C"], irrelevant, operating_point=reported)
    assert detection.match.true_positives == 2 and detection.cpm.score == pytest.approx(4 / 7)  # as without it
    point = detection.operating_point
    assert (point.true_positives, point.false_positives, point.irrelevant_ignored) == (1, 1, 1)
    assert set(point.missed) == {Annotation("A", 50, 0, 0, 6.0), Annotation("B", 0, 0, 0, 8.0)}
    results = EvaluationResults(dataset="hand-made example", models=(SYNTH,), detection=detection)
    json_path, md_path = write_report(results, tmp_path, "Operating point")
    data = json.loads(json_path.read_text())["detection"]
    assert data["operating_point"]["sensitivity"] == pytest.approx(1 / 3)
    assert data["operating_point"]["fp_per_scan"] == pytest.approx(1 / 3)
    assert len(data["operating_point"]["missed_nodules"]) == 2 and len(data["missed_nodules"]) == 1
    md = md_path.read_text()
    assert "| operating point: sensitivity of the findings | 0.3333 (1 of 3) |" in md
    missed = md.split("### Missed nodules (no finding within the radius)")[1]
    assert "| A | 50.0 | 0.0 | 0.0 | 6.0 | no |" in missed  # no candidate at all
    assert "| B | 0.0 | 0.0 | 0.0 | 8.0 | yes |" in missed  # its 0.6 candidate is below the threshold
    from ai_engine.evaluate.results import operating_point_extras

    extras = operating_point_extras(detection, [2.0, 4.0])
    assert extras["sensitivity_at_operating_point"] == pytest.approx(1 / 3) and extras["mean_seconds_per_scan"] == 3.0


def test_report_without_synthetic_models_does_not_claim_it(tmp_path):
    _, md_path = write_report(_results((REAL,)), tmp_path, "Real-data evaluation")
    md = md_path.read_text()
    assert "synthetic phantoms" not in md and "RESEARCH USE ONLY" in md


def test_included_nodules_are_matched_before_irrelevant_findings():
    nodule = Annotation("A", 0, 0, 0, 10)
    irrelevant = [Annotation("A", 2, 0, 0, 10)]
    m = match_candidates([nodule], [Candidate("A", 1, 0, 0, 0.7)], ["A"], irrelevant)
    assert (m.true_positives, m.irrelevant_ignored, m.false_positives) == (1, 0, 0)


def test_one_candidate_on_two_overlapping_nodules_hits_both():
    """LUNA16 keeps matching a candidate already used by another nodule (it only warns)."""
    nodules = [Annotation("A", 0, 0, 0, 10), Annotation("A", 4, 0, 0, 10)]
    m = match_candidates(nodules, [Candidate("A", 2, 0, 0, 0.7)], ["A"])
    assert (m.true_positives, m.false_negatives, m.false_positives) == (2, 0, 0)


def test_sensitivity_by_nodule_type_and_size_band():
    from ai_engine.evaluate.synthetic import sensitivity_by_kind

    found, lost = Annotation("s", 0, 0, 0, 5.0), Annotation("s", 9, 0, 0, 5.9)
    truths = [(found, "solid"), (lost, "ground-glass"), (Annotation("s", 40, 0, 0, 6.0), "ground-glass"),
              (Annotation("t", 0, 0, 0, 15.0), "part-solid")]
    by_kind = sensitivity_by_kind(truths, [lost])
    assert by_kind == {"sensitivity[solid, n=1]": 1.0, "sensitivity[part-solid, n=1]": 1.0,
                       "sensitivity[ground-glass, n=2]": 0.5, "sensitivity[4–6 mm, n=2]": 0.5,
                       "sensitivity[6–8 mm, n=1]": 1.0, "sensitivity[≥ 15 mm, n=1]": 1.0}


def test_the_report_says_which_unet_passes_ran():
    from dataclasses import replace

    from ai_engine.evaluate.results import unet_description
    from ai_engine.models.spec import InputSpec

    spec = InputSpec(patch=(8, 8, 8), tta_flips=((2,), (0,)), sw_blend="gaussian")
    assert unet_description(spec, tta=True) == "U-Net: the plain pass and 2 mirrored ones, 8³ windows, gaussian blending of overlapping windows"
    assert unet_description(spec, tta=False) == "U-Net: the plain pass only, 8³ windows, gaussian blending of overlapping windows"
    assert unet_description(InputSpec(patch=(8, 8, 8)), tta=True).startswith("U-Net: the plain pass only, 8³ windows, constant")
    assert ", 16×8×8 windows, " in unet_description(InputSpec(patch=(16, 8, 8)), tta=True)  # not a cube
    slabs = unet_description(replace(spec, sw_windows="slabs"), tta=False)
    assert slabs == "U-Net: the plain pass only, z-slabs spanning the lung box, gaussian blending of overlapping windows"


def test_each_member_is_scored_alone_on_the_detected_nodules():
    from ai_engine.evaluate.synthetic import member_aucs
    from tests.results.conftest import nodule

    mask = np.zeros((3, 3, 3), np.uint16)
    mask[1, 1, 1] = 1

    def finding(densenet: float, convnext: float):
        return nodule(1, mask, malignancy_by_model=(("densenet121-3d", densenet), ("convnext-tiny-3d", convnext)))

    # DenseNet ranks both malignant nodules first; ConvNeXt puts one benign between them
    matched = [(1, finding(0.9, 0.8)), (1, finding(0.7, 0.3)), (0, finding(0.2, 0.6)), (0, finding(0.1, 0.1))]
    assert member_aucs(matched) == {"malignancy_auc[detected, densenet121-3d]": 1.0,
                                    "malignancy_auc[detected, convnext-tiny-3d]": 0.75}
    assert member_aucs(matched[:2]) == {}  # one class only: no AUC


def test_the_label_models_own_auc_is_scored_on_the_detected_nodules():
    """label_model_aucs: the label model's P(malignant | what was drawn) ranks the detected nodules'
    labels; a spiculated 20 mm nodule outranks a round 5 mm one, so the order of the labels decides."""
    from dataclasses import replace
    from ai_engine.evaluate.synthetic import label_model_aucs
    from ai_engine.synthetic.labels import draw_attributes
    from ai_engine.synthetic.truth import NoduleSpec

    rng = np.random.default_rng(5)
    big = draw_attributes(rng, NoduleSpec(diameter_mm=20.0, morphology="spiculated", nodule_type="solid", calcified=False))
    small = draw_attributes(rng, NoduleSpec(diameter_mm=5.0, morphology="round", nodule_type="solid", calcified=False))
    keys = ("malignancy_auc[detected, label model: everything drawn (ceiling)]",
            "malignancy_auc[detected, label model without the zone (a patch's ceiling)]")
    right = [replace(big, malignant=True), replace(small, malignant=False)]
    assert label_model_aucs(right) == dict.fromkeys(keys, 1.0)
    assert label_model_aucs([replace(big, malignant=False), replace(small, malignant=True)]) == dict.fromkeys(keys, 0.0)
    assert label_model_aucs(right[:1]) == {}  # one class only: no AUC
