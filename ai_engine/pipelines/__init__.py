"""Pipelines: arrays in, frozen findings out.

    CTModels.load(weights_dir=SHIPPED_WEIGHTS_DIR, profile="demo") -> CTModels
    analyze_ct(volume: CTVolume, models: CTModels, config: PipelineConfig = PipelineConfig()) -> CTFindings
"""

from ai_engine.pipelines.ct_nodules import PipelineConfig, analyze_ct
from ai_engine.pipelines.models import SHIPPED_WEIGHTS_DIR, CTModels, LoadedModel

__all__ = ["SHIPPED_WEIGHTS_DIR", "CTModels", "LoadedModel", "PipelineConfig", "analyze_ct"]
