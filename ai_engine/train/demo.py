"""``build_demo_weights``: train every demo model from one seed on synthetic phantoms, then calibrate
and evaluate the whole CT pipeline on held-out phantoms and write the metrics into the cards.

Budget: ~15 min on a 2-core CPU. Weights are stored fp16 (a few MB in total).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path

from ai_engine.train.classification import DEMO_CONVNEXT_LR, train_malignancy, train_subtype
from ai_engine.train.config import TrainConfig
from ai_engine.train.run import TrainResult
from ai_engine.train.segmentation import train_segmentation

SEGMENTATION = TrainConfig(epochs=30, batch_size=8, n_cases=120, steps_per_epoch=40, patience=8)
MALIGNANCY = TrainConfig(epochs=20, batch_size=16, n_cases=400, patience=6)
CONVNEXT = replace(MALIGNANCY, lr=DEMO_CONVNEXT_LR, bf16=False)  # at 1e-3 it stays at chance; bf16 gains nothing
SUBTYPE = TrainConfig(epochs=16, batch_size=32, n_cases=480, patience=5)


@dataclass(frozen=True)
class DemoWeights:
    out_dir: Path
    results: tuple[TrainResult, ...]
    pipeline_metrics: dict
    seconds: dict[str, float]


def build_demo_weights(out_dir: Path, seed: int = 0, device: str = "cpu", progress: bool = True,
                       calibrate: bool = True) -> DemoWeights:
    """Train U-Net, DenseNet121-3D, ConvNeXt-Tiny-3D and EfficientNet-B3 (demo profiles) from ``seed``."""
    out_dir = Path(out_dir)
    seconds: dict[str, float] = {}

    def cfg(base: TrainConfig) -> TrainConfig:
        return replace(base, seed=seed, device=device, progress=progress, profile="demo")

    t = time.perf_counter()
    seg = train_segmentation("synthetic", out_dir, cfg(SEGMENTATION))
    seconds["segmentation"] = time.perf_counter() - t
    t = time.perf_counter()
    mal = train_malignancy("synthetic", out_dir, cfg(MALIGNANCY), member_configs={"convnext-tiny-3d": cfg(CONVNEXT)})
    seconds["malignancy"] = time.perf_counter() - t
    t = time.perf_counter()
    sub = train_subtype("synthetic", out_dir, cfg(SUBTYPE))
    seconds["subtype"] = time.perf_counter() - t
    pipeline_metrics: dict = {}
    if calibrate:
        from ai_engine.train.calibrate import calibrate_pipeline

        t = time.perf_counter()
        pipeline_metrics = calibrate_pipeline(out_dir, seed=seed, device=device)
        seconds["pipeline_calibration"] = time.perf_counter() - t
    return DemoWeights(out_dir, (seg, *mal, sub), pipeline_metrics, seconds)
