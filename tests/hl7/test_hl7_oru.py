"""ORU^R01 builder: strict hl7apy validation, and every OBX value equal to its input."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hl7apy.consts import VALIDATION_LEVEL
from hl7apy.parser import parse_message

from hl7.errors import OruBuildError
from hl7.oru import LungRads, build_oru, unescape
from tests.hl7.oru_samples import DISCLAIMER, NOW, sample_findings, sample_order


def segments(element, name: str) -> list:  # type: ignore[no-untyped-def]
    found = []
    for child in element.children:
        if child.classname == "Segment":
            found += [child] if child.name == name else []
        else:
            found += segments(child, name)
    return found


def field(segment, number: int) -> str:  # type: ignore[no-untyped-def]
    return getattr(segment, f"{segment.name.lower()}_{number}").to_er7()


def parsed(text: str):  # type: ignore[no-untyped-def]
    message = parse_message(text, validation_level=VALIDATION_LEVEL.STRICT)
    message.validate()
    return message


def obx_by_key(message) -> dict[tuple[str, str], dict[str, str]]:  # type: ignore[no-untyped-def]
    """(sub-ID, observation code) → value type, value, units code, status."""
    rows = {}
    for obx in segments(message, "OBX"):
        key = (field(obx, 4), field(obx, 3).split("^")[0])
        assert key not in rows, f"duplicate OBX {key}"
        rows[key] = {
            "type": field(obx, 2), "value": field(obx, 5), "units": field(obx, 6).split("^")[0], "status": field(obx, 11),
        }
    return rows


def build(correction: bool = False, **kw) -> str:  # type: ignore[no-untyped-def]
    return build_oru(
        kw.pop("order", sample_order()), kw.pop("findings", sample_findings()),
        control_id=kw.pop("control_id", "PN-000123"), now=NOW, correction=correction, **kw,
    )


def test_oru_is_strictly_valid_hl7_251_with_header_patient_and_order() -> None:
    text = build()
    assert "\n" not in text and text.count("\r") >= 5  # ER7: CR between segments
    message = parsed(text)
    msh = message.msh
    assert field(msh, 9) == "ORU^R01^ORU_R01"
    assert (field(msh, 10), field(msh, 11), field(msh, 12)) == ("PN-000123", "P", "2.5.1")
    assert [field(msh, n) for n in (3, 4, 5, 6)] == ["PULMONODE", "PULMONODE", "EHR", "HOSPITAL"]
    assert field(msh, 7) == "20261125180005+0000"
    (pid,) = segments(message, "PID")
    assert field(pid, 3) == "SYN000042^^^HOSPITAL_MRN^MR"
    assert field(pid, 5) == "MÜLLER^FATIMA^Q^PHD^DR"  # DICOM prefix/suffix order → XPN suffix^prefix
    assert (field(pid, 7), field(pid, 8)) == ("19610314", "F")
    (orc,) = segments(message, "ORC")
    assert (field(orc, 1), field(orc, 2), field(orc, 3)) == ("RE", "PL-77", "ACC0000042")
    (obr,) = segments(message, "OBR")
    assert (field(obr, 2), field(obr, 3)) == ("PL-77", "ACC0000042")
    assert field(obr, 4) == "24627-2^CT Chest^LN"
    assert field(obr, 7) == "20261125093012"
    assert field(obr, 25) == "F"
    (nte,) = segments(message, "NTE")
    assert unescape(field(nte, 3)) == DISCLAIMER


def test_every_obx_value_equals_its_input_with_ucum_units() -> None:
    findings = sample_findings()
    rows = obx_by_key(parsed(build(findings=findings)))
    for n in findings.nodules:
        sub = str(n.label)
        numeric = {
            "PLN-LONGAXIS": (n.long_axis_mm, "mm"), "PLN-SHORTAXIS": (n.short_axis_mm, "mm"),
            "PLN-MEANDIAM": (n.mean_diameter_mm, "mm"), "PLN-VOLUME": (n.volume_mm3, "mm3"),
            "PLN-MEANHU": (n.mean_hu, "[hnsf'U]"), "PLN-MALIGNP": (n.malignancy_probability, "{probability}"),
        }
        for code, (value, units) in numeric.items():
            row = rows[(sub, code)]
            assert row["type"] == "NM" and row["units"] == units and row["status"] == "F"
            assert float(row["value"]) == pytest.approx(value, abs=1e-9)
        assert rows[(sub, "PLN-NODTYPE")]["value"].split("^")[0] == {"solid": "SOLID", "ground-glass": "GGN"}[n.nodule_type]
        assert rows[(sub, "PLN-CALCIFIED")]["value"] == ("Y^Yes^HL70136" if n.calcified else "N^No^HL70136")
        assert rows[(sub, "PLN-MALIGNCLASS")]["value"].split("^")[0] == ("MALIGNANT" if n.malignant else "BENIGN")
        assert rows[(sub, "PLN-LUNGRADS")]["type"] == "CWE"
        assert rows[(sub, "PLN-LUNGRADS")]["value"].split("^")[0] == n.lung_rads.category
        assert unescape(rows[(sub, "PLN-MANAGEMENT")]["value"]) == n.lung_rads.management
    assert rows[("1", "PLN-SUBTYPE")]["value"] == "ADENO^Adenocarcinoma^99PLN"
    assert ("2", "PLN-SUBTYPE") not in rows  # only malignant nodules carry a subtype
    assert rows[("1", "PLN-LOCATION")]["value"] == "right upper lobe"
    assert rows[("", "PLN-EXAMLUNGRADS")]["value"].split("^")[0] == "4AS"
    assert rows[("", "PLN-EXAMMANAGEMENT")]["type"] == "TX"
    study = rows[("", "113014")]
    assert (study["type"], study["value"], study["status"]) == ("ST", "1.2.826.0.1.3680043.8.498.4242", "O")
    assert len(rows) == 13 + 11 + 3


def test_correction_marks_obr25_and_findings_c() -> None:
    message = parsed(build(correction=True))
    (obr,) = segments(message, "OBR")
    assert field(obr, 25) == "C"
    statuses = {row["status"] for key, row in obx_by_key(message).items() if key[1] != "113014"}
    assert statuses == {"C"}


def test_delimiters_in_values_are_escaped_and_round_trip() -> None:
    order = sample_order(patient_name="O'BRIEN|X^ANNE&MARIE", issuer="A&B", accession="ACC^1")
    management = "Follow-up | PET/CT ^ biopsy & review ~ \\ line1\nline2"
    findings = sample_findings(exam_lung_rads=LungRads("3", management))
    message = parsed(build(order=order, findings=findings))
    (pid,) = segments(message, "PID")
    assert unescape(pid.pid_5.xpn_1.to_er7()) == "O'BRIEN|X"
    assert unescape(pid.pid_5.xpn_2.to_er7()) == "ANNE&MARIE"
    assert unescape(pid.pid_3.cx_4.to_er7()) == "A&B"
    assert unescape(field(segments(message, "OBR")[0], 3)) == "ACC^1"
    # a line break would end the segment: it becomes a space
    assert unescape(obx_by_key(message)[("", "PLN-EXAMMANAGEMENT")]["value"]) == management.replace("\n", " ")


def test_study_without_nodules_has_exam_rows_only() -> None:
    findings = sample_findings(nodules=(), exam_lung_rads=LungRads("1", "Continue annual screening with LDCT in 12 months"))
    rows = obx_by_key(parsed(build(findings=findings)))
    assert set(rows) == {("", "PLN-EXAMLUNGRADS"), ("", "PLN-EXAMMANAGEMENT"), ("", "113014")}
    assert rows[("", "PLN-EXAMLUNGRADS")]["value"].startswith("1^")


def test_header_from_destination_configuration_and_pure_output() -> None:
    from hl7.oru import MessageHeader

    header = MessageHeader("NODE", "RAD", "EPIC", "MAIN", processing_id="T")
    first, second = build(header=header), build(header=header)
    assert first == second  # pure: same values, same text
    msh = parsed(first).msh
    assert [field(msh, n) for n in (3, 4, 5, 6, 11)] == ["NODE", "RAD", "EPIC", "MAIN", "T"]


@pytest.mark.parametrize(
    ("change", "message_part"),
    [
        (dict(findings=sample_findings(nodules=(replace(sample_findings().nodules[0], nodule_type="cystic"),))), "nodule type"),
        (dict(findings=sample_findings(exam_lung_rads=LungRads("5", "x"))), "Lung-RADS category"),
        (dict(findings=sample_findings(disclaimer="")), "disclaimer"),
        (dict(order=sample_order(sex="X")), "PID-8"),
        (dict(order=sample_order(patient_id="")), "PID-3"),
        (dict(order=sample_order(accession="")), "AccessionNumber"),
        (dict(findings=sample_findings(nodules=(replace(sample_findings().nodules[0], volume_mm3=float("nan")),))), "finite"),
        (dict(control_id="X" * 21), "MSH-10"),  # at most 20 characters in v2.5.1
        (dict(order=sample_order(patient_name="^")), "PID-5"),
    ],
)
def test_unusable_values_raise_a_clear_error(change: dict, message_part: str) -> None:
    with pytest.raises(OruBuildError, match=message_part):
        build(**change)


def test_hl7_is_a_leaf_package() -> None:
    """hl7 never imports the node or the AI engine (checked in a fresh interpreter)."""
    import subprocess
    import sys

    code = (
        "import sys, hl7.oru, hl7.ack, hl7.mllp, hl7.listener, hl7.errors; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'dicom_node', 'ai_engine', 'sqlalchemy'}))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_long_management_text_is_sent_as_repetitions() -> None:
    """Lung-RADS 4B management is longer than one TX repetition (199) holds: it is split
    between words into repetitions, validated strictly, and nothing is lost."""
    import dataclasses

    from hl7.oru import LungRads, build_oru, text_repetitions
    from tests.hl7.oru_samples import sample_findings, sample_order

    management = ("Diagnostic chest CT with or without contrast; PET/CT may be considered if there is a ≥ 8 mm "
                  "(≥ 268 mm³) solid nodule or solid component; tissue sampling; and/or referral for further "
                  "clinical evaluation. Management depends on clinical evaluation, patient preference, and risk "
                  "of malignancy")
    findings = dataclasses.replace(sample_findings(), exam_lung_rads=LungRads("4B", management))
    er7 = build_oru(sample_order(), findings, control_id="LONG1", now=__import__("datetime").datetime(2026, 1, 2),
                    correction=False)
    obx = next(seg for seg in er7.split("\r") if "PLN-EXAMMANAGEMENT" in seg)
    value = obx.split("|")[5]
    assert "~" in value and value.replace("~", " ") == management
    assert all(len(part) <= 199 for part in text_repetitions(management))


def test_a_word_longer_than_a_repetition_is_cut_whole_and_never_inside_an_escape() -> None:
    from hl7.oru import text_repetitions

    word = "x" * 197 + "\\F\\" + "y" * 250  # the field-separator escape straddles 199
    parts = text_repetitions("see " + word + " end")
    assert parts[0] == "see" and parts[-1].endswith(" end")
    assert all(len(p) <= 199 for p in parts)
    assert "".join(parts[1:]).removesuffix(" end") == word  # nothing lost
    assert parts[1] == "x" * 197 and parts[2].startswith("\\F\\")  # the escape stays whole
