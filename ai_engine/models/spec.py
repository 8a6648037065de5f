"""Input specifications: the numbers inference needs, kept next to the weights (in the card)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any


@dataclass(frozen=True)
class InputSpec:
    """How to feed a model: patch geometry, intensity window and decision thresholds.

    ``patch`` is in voxels at ``spacing_mm`` (3 numbers z, y, x for 3D models; 2 for 2.5D models).
    ``thresholds`` holds calibrated operating points, e.g. ``probability`` (U-Net foreground) or
    ``min_volume_mm3`` (smallest candidate kept).
    """

    patch: tuple[int, ...]
    spacing_mm: float = 1.0
    hu_window: tuple[float, float] = (-1000.0, 400.0)
    in_channels: int = 1
    classes: tuple[str, ...] = ()
    thresholds: dict[str, float] = field(default_factory=dict)
    sw_overlap: float = 0.25  # sliding-window overlap (segmentation only)
    # how overlapping windows are blended (MONAI's mode): "constant" weighs every voxel of a window
    # alike; "gaussian" weighs its centre more, where the U-Net sees context rather than zero padding
    sw_blend: str = "constant"
    sw_batch_size: int = 2  # ≥ 2: batch-1 fp32 3D convs take PyTorch's slow im2col path
    # the sliding window's windows: "patch" cubes of ``patch`` voxels; "slabs": z-slabs spanning the
    # lung box's whole y-x extent, two (one batch) unless a slab would exceed the voxel budget — the
    # patch cubes overlap so much that they run the network over ~2.5× the box's voxels
    sw_windows: str = "patch"
    bf16_autocast: bool = False  # adopted only if metrics move ≤ 0.005 vs fp32 (see card)
    # test-time augmentation (segmentation only): one more pass per entry, the (z, y, x) array axes
    # it mirrors; the probabilities are mirrored back and averaged with the plain pass
    tta_flips: tuple[tuple[int, ...], ...] = ()

    def threshold(self, name: str) -> float:
        return float(self.thresholds[name])

    def with_thresholds(self, **values: float) -> "InputSpec":
        return replace(self, thresholds={**self.thresholds, **values})

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "InputSpec":
        tuples = {k: tuple(data[k]) for k in ("patch", "hu_window", "classes") if k in data}
        if "tta_flips" in data:
            tuples["tta_flips"] = tuple(tuple(int(a) for a in flip) for flip in data["tta_flips"])
        return cls(**{**data, **tuples})
