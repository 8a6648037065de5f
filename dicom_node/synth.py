"""`pulmonode synth ct`: a synthetic chest CT phantom written as a DICOM series.

The phantom (``ai_engine.synthetic``) carries exact ground truth; it is written next to the
series as ``truth.json`` so a human can compare the node's findings with it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ai_engine.synthetic import NoduleSpec, Phantom, make_ct_phantom
from dicom_node.modality import FictitiousPatient, SeriesUIDs, ct_slices, write_ct_series


@dataclass(frozen=True)
class SyntheticStudy:
    out_dir: Path
    files: list[Path]
    phantom: Phantom
    patient: FictitiousPatient
    uids: SeriesUIDs

    def summary(self) -> str:
        z, y, x = self.phantom.volume.hu.shape
        lines = [f"wrote {len(self.files)} CT slices ({x}×{y}×{z}) to {self.out_dir}",
                 f"fictitious patient {self.patient.patient_id}, {len(self.phantom.nodules)} nodules (truth.json):"]
        lines += [f"  nodule {n.label}: {n.diameter_mm:.1f} mm {n.nodule_type.value}, "
                  f"{'malignant' if n.malignant else 'benign'}-like, {n.side.value} {n.zone.value} zone"
                  for n in self.phantom.nodules]
        return "\n".join(lines)


def write_synthetic_ct(out_dir: Path, *, seed: int = 0, shape_zyx: tuple[int, int, int] = (96, 160, 160),
                       spacing_mm: tuple[float, float, float] = (2.0, 2.0, 2.5), n_nodules: int | None = None,
                       nodule_spec: list[NoduleSpec] | None = None, series_number: int = 2) -> SyntheticStudy:
    phantom = make_ct_phantom(seed, shape_zyx=shape_zyx, spacing_mm=spacing_mm, n_nodules=n_nodules,
                              nodule_spec=nodule_spec)
    patient, uids = FictitiousPatient.from_seed(seed), SeriesUIDs.from_seed(seed)
    files = write_ct_series(ct_slices(phantom.volume, patient, uids, series_number=series_number), out_dir)
    (out_dir / "truth.json").write_text(json.dumps(_truth(phantom), indent=2), encoding="utf-8")
    return SyntheticStudy(out_dir, files, phantom, patient, uids)


def _truth(phantom: Phantom) -> dict:  # type: ignore[type-arg]
    return {
        "seed": phantom.seed,
        "synthetic": True,
        "nodules": [
            {"label": n.label, "centre_mm": list(n.centre_mm), "diameter_mm": n.diameter_mm,
             "volume_mm3": n.volume_mm3, "type": n.nodule_type.value, "calcified": n.calcified,
             "malignant": n.malignant, "subtype": n.subtype.value if n.subtype else None,
             "side": n.side.value, "zone": n.zone.value}
            for n in phantom.nodules
        ],
    }
