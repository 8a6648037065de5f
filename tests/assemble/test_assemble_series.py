"""Series selection over tags read from real pydicom datasets."""

from __future__ import annotations

import random

import pydicom
import pytest
from pydicom.dataset import Dataset

from dicom_node.assemble.series import (
    CT_CHECKS,
    Kind,
    NotEligible,
    Selection,
    select_series,
)
from tests.assemble.instances import ct_series, dx, enhanced_ct, mr, series_key, sm, to_tags
from tests.helpers import write_study


def _reason(result: Selection | NotEligible) -> str:
    assert isinstance(result, NotEligible), f"expected NotEligible, got {result}"
    return result.reason


def test_axial_ct_is_selected_in_slice_order_whatever_the_arrival_order() -> None:
    slices = ct_series(n=40)
    tags = to_tags(slices)
    shuffled = tags[:]
    random.Random(7).shuffle(shuffled)
    result = select_series(shuffled)
    assert isinstance(result, Selection)
    assert result.kind is Kind.CT
    assert result.series_key == series_key(slices[0])
    # the modality writes slice k at z = -100 + 1.25 k: ascending z is instance order
    assert result.instance_ids == tuple(t.instance_id for t in tags)
    assert result.slice_spacing_mm == pytest.approx(1.25)


def test_files_written_by_the_modality_and_read_back_are_eligible(tmp_path) -> None:  # type: ignore[no-untyped-def]
    paths = write_study(tmp_path / "study", seed=3, shape=(34, 16, 16))
    datasets = [pydicom.dcmread(p, stop_before_pixels=True) for p in reversed(paths)]
    result = select_series(to_tags(datasets))
    assert isinstance(result, Selection) and result.kind is Kind.CT
    assert len(result.instance_ids) == 34
    assert result.instance_ids[0] == 34  # the last file read is the lowest slice


def test_one_slice_ct_is_not_eligible() -> None:
    assert _reason(select_series(to_tags(ct_series(n=1)))) == "CT series 2: 1 slice, need at least 32"


def test_min_ct_slices_is_configurable() -> None:
    tags = to_tags(ct_series(n=20))
    assert "20 slices, need at least 32" in _reason(select_series(tags))
    assert isinstance(select_series(tags, min_ct_slices=16), Selection)


def test_localizer_is_not_eligible() -> None:
    slices = ct_series(n=40, series_number=3)
    for ds in slices:
        ds.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
    assert _reason(select_series(to_tags(slices))) == "CT series 3: localizer (ImageType LOCALIZER)"


def test_mixed_orientations_are_not_eligible() -> None:
    slices = ct_series(n=40)
    slices[10].ImageOrientationPatient = [1, 0, 0, 0, 0.9848078, -0.1736482]  # 10° tilt
    assert _reason(select_series(to_tags(slices))) == "CT series 2: mixed orientations"


def test_coronal_series_is_not_axial() -> None:
    slices = ct_series(n=40)
    for k, ds in enumerate(slices):
        ds.ImageOrientationPatient = [1, 0, 0, 0, 0, -1]
        ds.ImagePositionPatient = [0.0, -50.0 + 1.25 * k, 0.0]
    assert "not axial (slice normal 90°" in _reason(select_series(to_tags(slices)))


def test_slightly_tilted_series_within_tolerance_is_axial() -> None:
    slices = ct_series(n=40)
    for k, ds in enumerate(slices):
        ds.ImageOrientationPatient = [1, 0, 0, 0, 0.9961947, -0.0871557]  # 5° gantry-like tilt
        ds.ImagePositionPatient = [0.0, 0.0871557 * 1.25 * k, -100 + 0.9961947 * 1.25 * k]
    assert isinstance(select_series(to_tags(slices)), Selection)


def test_gap_in_slices_is_not_eligible() -> None:
    slices = ct_series(n=43)
    del slices[17:20]  # three missing slices: a 5.0 mm gap after the 17th slice
    assert _reason(select_series(to_tags(slices))) == (
        "CT series 2: gap of 5.0 mm at slice 17, > 1.5 × median spacing 1.25 mm"
    )


def test_duplicate_positions_are_not_eligible() -> None:
    slices = ct_series(n=40)
    slices[5].ImagePositionPatient = list(slices[4].ImagePositionPatient)
    assert "two slices at the same position" in _reason(select_series(to_tags(slices)))


def test_nan_rescale_slope_is_not_eligible() -> None:
    slices = ct_series(n=40)
    with pytest.warns(UserWarning, match="Invalid value for VR DS"):
        slices[4].RescaleSlope = "NaN"
    tags = to_tags(slices)
    assert tags[4].tags["RescaleSlope"] == "NaN"  # kept as text: JSON and PostgreSQL reject NaN
    assert _reason(select_series(tags)) == "CT series 2: RescaleSlope is NaN (instance 5)"


@pytest.mark.parametrize(
    ("keyword", "value", "expected"),
    [
        ("Rows", 32, "mixed image sizes"),
        ("FrameOfReferenceUID", "1.2.3.4", "more than one frame of reference"),
        ("PixelSpacing", [0.5, 0.5], "mixed PixelSpacing"),
    ],
)
def test_one_size_frame_of_reference_and_pixel_spacing_per_series(keyword, value, expected) -> None:  # type: ignore[no-untyped-def]
    slices = ct_series(n=40)
    setattr(slices[20], keyword, value)
    assert expected in _reason(select_series(to_tags(slices)))


def test_two_eligible_series_thinnest_spacing_wins() -> None:
    thick = ct_series(n=40, series_number=2, slice_mm=2.5)
    thin = ct_series(n=40, series_number=3, slice_mm=1.0)
    result = select_series(to_tags(thick + thin))
    assert isinstance(result, Selection) and result.series_key == series_key(thin[0])
    assert result.slice_spacing_mm == pytest.approx(1.0)


def test_equal_spacing_most_slices_then_lowest_series_number_wins() -> None:
    short = ct_series(n=36, series_number=2)
    long = ct_series(n=44, series_number=4)
    result = select_series(to_tags(short + long))
    assert isinstance(result, Selection) and result.series_key == series_key(long[0])
    twin = ct_series(n=44, series_number=3)
    again = select_series(to_tags(long + twin))
    assert isinstance(again, Selection) and again.series_key == series_key(twin[0])


def test_localizer_beside_the_axial_series_is_skipped() -> None:
    scout = ct_series(n=2, series_number=1)
    for ds in scout:
        ds.ImageType = ["ORIGINAL", "PRIMARY", "LOCALIZER"]
    axial = ct_series(n=40, series_number=2)
    result = select_series(to_tags(scout + axial))
    assert isinstance(result, Selection) and result.series_key == series_key(axial[0])


def test_frontal_chest_x_ray_is_selected_and_lateral_left_out() -> None:
    images = [dx(1, "LL", instance_number=2), dx(1, "PA", instance_number=1)]
    tags = to_tags(images)
    result = select_series(tags)
    assert isinstance(result, Selection) and result.kind is Kind.CXR
    assert result.instance_ids == (tags[1].instance_id,)


def test_lateral_only_chest_x_ray_is_not_eligible() -> None:
    reason = _reason(select_series(to_tags([dx(4, "LL")])))
    assert reason == "series 4: no frontal chest view (ViewPosition LL, BodyPartExamined CHEST); need PA or AP"


def test_chest_x_ray_without_view_position_needs_body_part_chest() -> None:
    assert isinstance(select_series(to_tags([dx(1, None, "CHEST")])), Selection)
    assert "no frontal chest view" in _reason(select_series(to_tags([dx(1, None, "ABDOMEN")])))


def test_whole_slide_microscopy_is_pathology() -> None:
    tags = to_tags([sm(7, instance_number=2), sm(7, instance_number=1)])
    result = select_series(tags)
    assert isinstance(result, Selection) and result.kind is Kind.PATHOLOGY
    assert result.instance_ids == (tags[1].instance_id, tags[0].instance_id)


def test_unknown_modality_is_not_eligible() -> None:
    assert _reason(select_series(to_tags([mr(6)]))) == (
        "series 6: modality MR (MR Image Storage) is not analysed (CT, chest CR/DX, SM or VL pathology are)"
    )


def test_enhanced_ct_with_enough_frames_is_selected() -> None:
    tags = to_tags([enhanced_ct(frames=120)])
    result = select_series(tags)
    assert isinstance(result, Selection) and result.kind is Kind.CT
    assert result.instance_ids == (tags[0].instance_id,)
    assert "10 frames" in _reason(select_series(to_tags([enhanced_ct(frames=10)])))


def test_enhanced_ct_with_a_coronal_shared_orientation_is_not_axial() -> None:
    ds = enhanced_ct(frames=120)
    orientation = Dataset()
    orientation.ImageOrientationPatient = [1, 0, 0, 0, 0, -1]
    shared = Dataset()
    shared.PlaneOrientationSequence = [orientation]
    ds.SharedFunctionalGroupsSequence = [shared]
    assert "not axial (slice normal 90°" in _reason(select_series(to_tags([ds])))


def test_ct_wins_over_chest_x_ray_and_reasons_name_every_series() -> None:
    ct = ct_series(n=40, series_number=2)
    result = select_series(to_tags([dx(1, "PA")] + ct))
    assert isinstance(result, Selection) and result.kind is Kind.CT
    reason = _reason(select_series(to_tags([mr(9)] + ct_series(n=3, series_number=2))))
    assert reason == (
        "CT series 2: 3 slices, need at least 32; "
        "series 9: modality MR (MR Image Storage) is not analysed (CT, chest CR/DX, SM or VL pathology are)"
    )


def test_secondary_capture_is_not_analysed() -> None:
    ds = mr(8)
    ds.SOPClassUID, ds.Modality = "1.2.840.10008.5.1.4.1.1.7", "OT"
    assert _reason(select_series(to_tags([ds]))) == (
        "series 8: modality OT (Secondary Capture Image Storage) is not analysed "
        "(CT, chest CR/DX, SM or VL pathology are)"
    )


def test_burned_in_check_can_veto_a_series() -> None:
    tags = to_tags(ct_series(n=40))
    verdict = select_series(tags, burned_in_check=lambda members: f"burned-in risk in {len(members)} images")
    assert _reason(verdict) == "series 2: burned-in risk in 40 images"


def test_tags_stored_as_backslash_text_are_understood() -> None:
    tags = to_tags(ct_series(n=40))
    as_text = [
        type(t)(
            t.instance_id,
            t.series_key,
            {
                **t.tags,
                "ImagePositionPatient": "\\".join(str(v) for v in t.tags["ImagePositionPatient"]),
                "ImageOrientationPatient": "\\".join(str(v) for v in t.tags["ImageOrientationPatient"]),
                "ImageType": "\\".join(t.tags["ImageType"]),
            },
        )
        for t in tags
    ]
    assert select_series(as_text) == select_series(tags)


def test_ct_checks_are_a_named_table() -> None:
    names = [name for name, _ in CT_CHECKS]
    assert names[0] == "not a localizer" and "consistent spacing" in names and len(set(names)) == len(names)
