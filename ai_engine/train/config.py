"""Training configuration (paper defaults: Adam 1e-3, cosine annealing, wd 1e-4, patience 10)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class TrainConfig:
    profile: str = "demo"
    seed: int = 0
    epochs: int = 50
    batch_size: int = 16  # the paper's; use 4-8 for 3D on a CPU
    lr: float = 1e-3
    weight_decay: float = 1e-4
    patience: int = 10  # early stopping on the validation metric
    device: str = "cpu"
    num_threads: int = 2
    augment: bool = True
    bf16: bool = True  # bf16 autocast for forward passes where the device has bf16 kernels (models.precision)
    folds: int = 1  # > 1: k-fold cross-validation on train+val, metrics averaged
    n_cases: int = 200  # synthetic: number of simulated patients
    phantom_shape_zyx: tuple[int, int, int] = (200, 288, 288)  # synthetic segmentation phantoms, 1 mm voxels
    steps_per_epoch: int | None = None  # None: one pass over the training set
    half_weights: bool = True  # store fp16 weights (commit-sized)
    progress: bool = True  # tqdm bars

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
