"""`pulmonode evaluate --data luna16:PATH`: the CT pipeline on LUNA16 scans, scored as LUNA16 scores it.

The reference is ``annotations.csv``. Where ``annotations_excluded.csv`` is present, its findings
are "irrelevant": a mark on one is neither a hit nor a false positive, as in the challenge's
evaluation script. The FROC scores every candidate the U-Net proposes, as the challenge scores a
system's candidates.csv, and the report adds the operating point of the pipeline's findings. The
result is detection only (FROC, CPM, sensitivity at 1 FP/scan), because
LUNA16 gives no masks, malignancy or subtype.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from ai_engine.datasets import Luna16Dataset, read_annotations
from ai_engine.evaluate.detection import Annotation, Candidate
from ai_engine.evaluate.report import write_report
from ai_engine.evaluate.results import EvaluationResults, evaluate_detection, operating_point_extras, unet_description
from ai_engine.pipelines.ct_nodules import PipelineConfig, analyze_ct_with_marks
from ai_engine.pipelines.models import CTModels

EXCLUDED_CSV = "annotations_excluded.csv"


@dataclass(frozen=True)
class Luna16EvalConfig:
    max_scans: int | None = None  # the first N scans by seriesuid; None: all of them
    device: str = "cpu"
    tta: bool = True  # the U-Net card's mirrored passes; False: the plain pass only
    progress: bool = True
    bootstrap_samples: int = 1000  # LUNA16's FROC bootstrap: scans resampled


def evaluate_luna16(models: CTModels, root: Path, out_dir: Path, config: Luna16EvalConfig = Luna16EvalConfig()
                    ) -> tuple[EvaluationResults, Path, Path]:
    """Run the pipeline on each scan and write report.json / report.md (FROC plot) into ``out_dir``."""
    root = Path(root)
    dataset = Luna16Dataset(root)
    uids = dataset.seriesuids[:config.max_scans]
    irrelevant = read_annotations(root / EXCLUDED_CSV) if (root / EXCLUDED_CSV).is_file() else ()
    relevant: list[Annotation] = []
    candidates: list[Candidate] = []
    found: list[Candidate] = []  # the findings: the operating point
    seconds = []
    for uid in tqdm(uids, desc="LUNA16 scans", disable=not config.progress):
        case = dataset.load(uid)
        findings, marks = analyze_ct_with_marks(case.volume, models, PipelineConfig(device=config.device, tta=config.tta))
        seconds.append(sum(findings.timings_s.values()))
        relevant += case.annotations
        candidates += [Candidate(uid, *m.centre_mm, m.score) for m in marks]
        found += [Candidate(uid, *n.centroid_mm, n.detection_score) for n in findings.nodules]
    # other scans' findings: never looked up
    detection = evaluate_detection(relevant, candidates, uids, irrelevant, config.bootstrap_samples,
                                   operating_point=found)
    results = EvaluationResults(
        dataset=f"LUNA16 at {root}: {len(uids)} of {len(dataset)} scans"
                + (f", {EXCLUDED_CSV} as irrelevant findings" if irrelevant else f", no {EXCLUDED_CSV}")
                + f"; {unet_description(models.segmentation.card.input_spec, config.tta)}",
        models=models.infos(), detection=detection, extra=operating_point_extras(detection, seconds))
    json_path, md_path = write_report(results, out_dir, "pulmonode CT pipeline on LUNA16")
    return results, json_path, md_path
