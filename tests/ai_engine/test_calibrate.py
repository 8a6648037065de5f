"""Whole-scan calibration of the ensemble's malignant threshold, and the findings that follow it."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace

import numpy as np
import pytest

from ai_engine.pipelines import CTModels, analyze_ct
from ai_engine.pipelines.models import SHIPPED_WEIGHTS_DIR
from ai_engine.train import calibrate
from ai_engine.train.calibrate import eval_phantoms, youden_threshold

SEED = 7  # its first validation phantom alone gives detected nodules of both classes with the shipped weights
FLIP_SEED = 4  # its first validation phantom has a nodule whose outline the windows' blending moves


def test_youden_threshold_separates_and_falls_halfway_to_the_next_score():
    y = np.array([0, 0, 1, 1])
    assert youden_threshold(y, np.array([0.2, 0.3, 0.6, 0.9])) == pytest.approx(0.45)
    # J ties at 0.8 and 0.35: the first (highest) cut wins, halfway down to 0.4
    assert youden_threshold(y, np.array([0.1, 0.4, 0.35, 0.8])) == pytest.approx(0.6)
    assert youden_threshold(np.array([1, 1]), np.array([0.2, 0.9]), default=0.5) == 0.5


@pytest.fixture()
def weights(tmp_path):
    out = tmp_path / "weights"
    shutil.copytree(SHIPPED_WEIGHTS_DIR, out)
    return out


def _member_cards(weights) -> list[dict]:
    return [json.loads((weights / f"{n}-demo.json").read_text()) for n in ("densenet121-3d", "convnext-tiny-3d")]


def test_a_calibrated_threshold_goes_into_every_member_card_and_the_findings(weights, monkeypatch):
    monkeypatch.setattr(calibrate, "MIN_AUC_TO_CALIBRATE", 0.0)  # adopt whatever the two scans give
    info = calibrate.calibrate_malignancy(weights, seed=SEED, n_val=2)
    assert info["adopted"] and info["malignant_threshold"] == info["youden_threshold"]
    cards = _member_cards(weights)
    assert {c["input_spec"]["thresholds"]["malignant"] for c in cards} == {info["malignant_threshold"]}
    assert all(c["metrics"]["pipeline_malignancy_calibration"]["n_detected"] == info["n_detected"] for c in cards)
    assert info["n_detected"] > 0 and 0.0 < info["malignant_threshold"] < 1.0

    findings = analyze_ct(next(eval_phantoms(SEED, "validation", 1)).volume, CTModels.load(weights, "demo"))
    assert findings.nodules
    for n in findings.nodules:
        assert n.malignancy_threshold == info["malignant_threshold"]
        assert n.malignant == (n.malignancy_probability >= info["malignant_threshold"])
        assert (n.subtype is not None) == n.malignant  # the subtype step follows the same call


def test_a_threshold_fitted_where_the_ensemble_barely_ranks_is_not_adopted(weights, monkeypatch):
    before = {c["input_spec"]["thresholds"]["malignant"] for c in _member_cards(weights)}
    monkeypatch.setattr(calibrate, "MIN_AUC_TO_CALIBRATE", 1.01)  # no AUC reaches it
    info = calibrate.calibrate_malignancy(weights, seed=SEED, n_val=2)
    assert not info["adopted"] and {info["malignant_threshold"]} == before
    cards = _member_cards(weights)
    assert {c["input_spec"]["thresholds"]["malignant"] for c in cards} == before
    assert all(c["metrics"]["pipeline_malignancy_calibration"]["youden_threshold"] == info["youden_threshold"]
               for c in cards)


def test_nodule_malignant_follows_its_threshold():
    findings = analyze_ct(next(eval_phantoms(SEED, "validation", 1)).volume, CTModels.load(SHIPPED_WEIGHTS_DIR, "demo"))
    n = findings.nodules[0]
    assert replace(n, malignancy_threshold=n.malignancy_probability).malignant
    assert not replace(n, malignancy_threshold=n.malignancy_probability + 1e-6).malignant


def test_where_bf16_cannot_be_measured_detection_calibration_keeps_the_cards_decision(weights, monkeypatch):
    monkeypatch.setattr(calibrate, "bf16_fast", lambda device: False)  # as on an AVX2-only CPU
    card_path = weights / "unet3d-demo.json"
    before = json.loads(card_path.read_text())
    assert before["input_spec"]["bf16_autocast"]  # the shipped card adopted bf16 where it was measured

    info = calibrate.calibrate_detection(weights, seed=SEED, n_val=1)

    after = json.loads(card_path.read_text())
    assert after["input_spec"]["bf16_autocast"] and info["bf16_adopted"] and not info["bf16_measured"]
    earlier = before["metrics"]["pipeline_validation"]  # a measurement, or itself one carried forward
    assert info["bf16_earlier_measurement"] == earlier.get("bf16_earlier_measurement", {
        k: earlier.get(k) for k in ("bf16_minus_fp32_abs", "data")})
    moved = info["bf16_earlier_measurement"]["bf16_minus_fp32_abs"]
    assert all(moved[k] <= calibrate.BF16_TOLERANCE for k in calibrate.BF16_GATED)
    assert after["input_spec"]["thresholds"]["detection"] == info["detection_threshold"]
    assert after["metrics"]["pipeline_validation"]["bf16_earlier_measurement"] == info["bf16_earlier_measurement"]
    assert {"sensitivity_at_1fp", "cpm", "mean_detected_dice"} <= set(info["fp32"])

    card = json.loads(card_path.read_text())
    card["input_spec"]["bf16_autocast"] = False  # a card that never adopted bf16 stays off
    card_path.write_text(json.dumps(card))
    info = calibrate.calibrate_detection(weights, seed=SEED, n_val=1)
    assert not info["bf16_adopted"] and "bf16_earlier_measurement" not in info
    assert not json.loads(card_path.read_text())["input_spec"]["bf16_autocast"]


def test_the_blending_and_mirrored_passes_with_the_best_validation_cpm_go_into_the_card(weights):
    choices = {"plain": (), "x": ((2,),)}
    info = calibrate.calibrate_flips(weights, seed=FLIP_SEED, n_val=1, choices=choices)

    assert set(info["choices"]) == {"constant: plain", "constant: x", "gaussian: plain", "gaussian: x"}
    scores = {name: c["cpm"] for name, c in info["choices"].items()}
    assert scores[info["adopted"]] == max(scores.values())
    if scores["constant: plain"] == max(scores.values()):
        assert info["adopted"] == "constant: plain"  # a tie keeps the cheaper single pass and the earlier blending
    dice = {name: c["mean_detected_dice"] for name, c in info["choices"].items()}
    assert 0.0 < dice["constant: plain"] <= 1.0
    assert dice["constant: plain"] != dice["constant: x"]  # the mirrored pass changed the outlines
    assert dice["constant: plain"] != dice["gaussian: plain"]  # so did the blending
    adopted = info["choices"][info["adopted"]]
    card = json.loads((weights / "unet3d-demo.json").read_text())
    assert card["input_spec"]["tta_flips"] == adopted["flips_zyx_axes"]
    assert card["input_spec"]["sw_blend"] == adopted["sw_blend"]
    assert card["metrics"]["tta_validation"]["adopted"] == info["adopted"]
    spec = CTModels.load(weights, "demo").segmentation.card.input_spec
    assert (spec.sw_blend, [list(f) for f in spec.tta_flips]) == (adopted["sw_blend"], adopted["flips_zyx_axes"])


@pytest.mark.parametrize(("moved", "adopted"), [
    ({"sensitivity_at_1fp": 1 / 43}, True),  # one nodule across the 1-FP point: recorded, not gated
    ({"cpm": 0.006}, False),
    ({"mean_detected_dice": -0.006}, False),
    ({"cpm": 0.004, "mean_detected_dice": 0.0049}, True),
])
def test_bf16_is_adopted_where_cpm_and_dice_move_at_most_the_tolerance(weights, monkeypatch, moved, adopted):
    from ai_engine.evaluate import Annotation, Candidate, evaluate_detection

    detection = evaluate_detection([Annotation("s", 0, 0, 0, 10)], [Candidate("s", 0, 0, 0, 0.9)], ["s"], [])
    fp32 = {"detection": detection, "sensitivity_at_1fp": 0.8, "cpm": 0.8, "mean_detected_dice": 0.85}
    bf16 = {**fp32, **{k: fp32[k] + v for k, v in moved.items()}}
    monkeypatch.setattr(calibrate, "bf16_fast", lambda device: True)
    monkeypatch.setattr(calibrate, "eval_phantoms", lambda seed, split, n: [])
    monkeypatch.setattr(calibrate, "validate", lambda models, phantoms, device: {"fp32": fp32, "bf16": bf16})
    info = calibrate.calibrate_detection(weights, n_val=1)
    assert info["bf16_adopted"] is adopted and info["bf16_measured"]
    assert info["bf16_minus_fp32_abs"] == pytest.approx({k: abs(moved.get(k, 0.0)) for k in fp32 if k != "detection"})
    assert json.loads((weights / "unet3d-demo.json").read_text())["input_spec"]["bf16_autocast"] is adopted


def test_the_plain_pass_gets_its_own_detection_threshold(weights):
    before = json.loads((weights / "unet3d-demo.json").read_text())
    info = calibrate.calibrate_plain_pass(weights, seed=SEED, n_val=1)

    card = json.loads((weights / "unet3d-demo.json").read_text())
    assert card["input_spec"]["thresholds"]["detection_plain_pass"] == info["detection_threshold"]
    assert card["input_spec"]["thresholds"]["detection"] == before["input_spec"]["thresholds"]["detection"]
    assert card["input_spec"]["tta_flips"] == before["input_spec"]["tta_flips"]  # the card's passes stay
    assert card["metrics"]["plain_pass_validation"]["precision"] == info["precision"]
    assert info["precision"] == ("bf16" if calibrate.bf16_fast("cpu") and before["input_spec"]["bf16_autocast"] else "fp32")
    assert 0.0 <= info["sensitivity_at_1fp"] <= 1.0 and info["n_scans"] == 1


def test_validation_runs_the_fp32_reference_only_where_asked(monkeypatch):
    models = CTModels.load(SHIPPED_WEIGHTS_DIR, "demo")
    phantoms = list(eval_phantoms(SEED, "validation", 1))
    monkeypatch.setattr(calibrate, "bf16_fast", lambda device: True)
    both = calibrate.validate(models, phantoms, "cpu", tta=False)
    assert set(both) == {"fp32", "bf16"}
    alone = calibrate.validate(models, phantoms, "cpu", tta=False, fp32_reference=False)
    assert set(alone) == {"bf16"} and alone["bf16"]["cpm"] == both["bf16"]["cpm"]
    monkeypatch.setattr(calibrate, "bf16_fast", lambda device: False)  # no bf16 kernels: fp32 is all there is
    assert set(calibrate.validate(models, phantoms, "cpu", tta=False, fp32_reference=False)) == {"fp32"}


def test_the_detection_threshold_keeps_the_best_sensitivity_within_the_fp_limit_with_the_fewest_fps():
    from ai_engine.evaluate import Annotation, Candidate, evaluate_detection

    truth = [Annotation("a", 0, 0, 0, 10), Annotation("b", 0, 0, 0, 10), Annotation("b", 50, 50, 50, 10)]
    hits = [Candidate("a", 0, 0, 0, 0.9), Candidate("b", 0, 0, 0, 0.7)]
    false = [Candidate(uid, 90, 90, 90 + i, p) for i, (uid, p) in enumerate([("a", 0.8), ("b", 0.6), ("a", 0.5)])]
    match = evaluate_detection(truth, hits + false, ["a", "b"], []).match
    # two FPs allowed (1 a scan): both hits by 0.6, but 0.6 itself is an FP that buys nothing
    assert calibrate.detection_threshold(match, 1.0) == pytest.approx(0.65)
    assert calibrate.detection_threshold(match, 0.5) == pytest.approx(0.65)  # one FP: the 0.8 one, for the 0.7 hit
    assert calibrate.detection_threshold(match, 0.4) == pytest.approx(0.85)  # no FP allowed: the first hit only
    nothing = evaluate_detection(truth, false, ["a", "b"], []).match
    assert calibrate.detection_threshold(nothing, 1.0) > 0.8  # no hit within the limit: nothing is called


def test_the_fp_bound_leaves_a_margin_that_narrows_with_more_validation_scans():
    from ai_engine.evaluate import Annotation, Candidate, evaluate_detection

    def scans(copies: int):
        """Scan a: a hit at 0.9 and an FP at 0.8; scan b: a hit at 0.7 (and an FP at 0.6); ``copies`` of each."""
        truth, cands = [], []
        for k in range(copies):
            a, b = f"a{k}", f"b{k}"
            truth += [Annotation(a, 0, 0, 0, 10), Annotation(b, 0, 0, 0, 10)]
            cands += [Candidate(a, 0, 0, 0, 0.9), Candidate(a, 90, 90, 90, 0.8),
                      Candidate(b, 0, 0, 0, 0.7), Candidate(b, 90, 90, 90, 0.6)]
        uids = [f"{s}{k}" for k in range(copies) for s in "ab"]
        return evaluate_detection(truth, cands, uids, []).match

    # both hits need the 0.8 FP: a mean of 0.5 FPs per scan
    assert calibrate.detection_threshold(scans(1), 0.6) == pytest.approx(0.65)
    # two scans: a resample of scan a alone has 1 FP per scan, so the bound is 1 and only 0.9 is kept
    assert calibrate.detection_threshold(scans(1), 0.6, upper_confidence=0.95) == pytest.approx(0.85)
    # 100 scans: the bound is near the mean (0.5 + 1.645 · 0.05)
    assert calibrate.detection_threshold(scans(50), 0.6, upper_confidence=0.95) == pytest.approx(0.65)
    assert calibrate.detection_threshold(scans(50), 0.55, upper_confidence=0.95) == pytest.approx(0.85)


def test_the_unet_card_names_the_malignancy_members_its_pipeline_auc_was_measured_with(weights):
    """The U-Net card's pipeline_test holds a malignancy AUC; without the members' sha256 it could
    not be told from a figure of members shipped later."""
    result = calibrate.evaluate_pipeline(weights, seed=SEED, n_test=1)
    card = json.loads((weights / "unet3d-demo.json").read_text())["metrics"]["pipeline_test"]
    members = {c["name"]: c["sha256"] for c in _member_cards(weights)}
    assert card["malignancy_members_sha256"] == result["malignancy_members_sha256"] == members
    assert card["n_scans"] == 1 and card["n_detected_for_malignancy"] == result["n_detected_for_malignancy"]
