"""Sample ORU inputs shared by the hl7 and delivery tests."""

from __future__ import annotations

from datetime import date, datetime, timezone

from hl7.oru import LungRads, NoduleResult, OrderContext, ResultFindings

DISCLAIMER = "RESEARCH USE ONLY - not for diagnostic use. Models trained on synthetic data, not on patients."
NOW = datetime(2026, 11, 25, 18, 0, 5, tzinfo=timezone.utc)


def sample_order(**overrides) -> OrderContext:  # type: ignore[no-untyped-def]
    values = dict(
        patient_id="SYN000042",
        patient_name="MÜLLER^FATIMA^Q^DR^PHD",
        accession="ACC0000042",
        study_uid="1.2.826.0.1.3680043.8.498.4242",
        issuer="HOSPITAL_MRN",
        birth_date=date(1961, 3, 14),
        sex="F",
        study_datetime=datetime(2026, 11, 25, 9, 30, 12),
        placer_order_number="PL-77",
        filler_order_number=None,
    )
    values.update(overrides)
    return OrderContext(**values)  # type: ignore[arg-type]


def sample_findings(**overrides) -> ResultFindings:  # type: ignore[no-untyped-def]
    values = dict(
        nodules=(
            NoduleResult(
                label=1, long_axis_mm=11.3, short_axis_mm=8.9, mean_diameter_mm=10.1, volume_mm3=523.6,
                mean_hu=31.4, nodule_type="solid", calcified=False, malignancy_probability=0.812,
                malignant=True, subtype="adenocarcinoma",
                lung_rads=LungRads("4A", "3-month LDCT; PET/CT may be considered"), location="right upper lobe",
            ),
            NoduleResult(
                label=2, long_axis_mm=5.2, short_axis_mm=4.1, mean_diameter_mm=4.7, volume_mm3=48.0,
                mean_hu=-612.5, nodule_type="ground-glass", calcified=True, malignancy_probability=0.07,
                malignant=False, subtype=None, lung_rads=LungRads("2", "12-month screening LDCT"),
            ),
        ),
        exam_lung_rads=LungRads("4A", "3-month LDCT; PET/CT may be considered", s_modifier=True),
        disclaimer=DISCLAIMER,
    )
    values.update(overrides)
    return ResultFindings(**values)  # type: ignore[arg-type]
