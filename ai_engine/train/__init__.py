"""Training: what ``pulmonode train ...`` calls.

    train_segmentation(data, out_dir, config) -> TrainResult            (U-Net)
    train_malignancy(data, out_dir, config) -> tuple[TrainResult, ...]  (DenseNet121-3D, ConvNeXt-Tiny-3D)
    train_subtype(data, out_dir, config) -> TrainResult                 (EfficientNet-B3 2.5D)
    build_demo_weights(out_dir, seed=0) -> DemoWeights                  (all of them + pipeline calibration)

``data`` is "synthetic", "luna16:PATH" or "kaggle-ct:PATH"; ``config`` a :class:`TrainConfig`.
"""

from ai_engine.train.classification import train_malignancy, train_subtype
from ai_engine.train.config import TrainConfig
from ai_engine.train.data import parse_data
from ai_engine.train.demo import DemoWeights, build_demo_weights
from ai_engine.train.errors import DataSourceError, TrainError
from ai_engine.train.run import TrainResult
from ai_engine.train.segmentation import train_segmentation
from ai_engine.train.split import patient_folds, patient_split

__all__ = [
    "DataSourceError", "DemoWeights", "TrainConfig", "TrainError", "TrainResult", "build_demo_weights",
    "parse_data", "patient_folds", "patient_split", "train_malignancy", "train_segmentation",
    "train_subtype",
]
