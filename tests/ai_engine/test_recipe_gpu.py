"""The GPU training recipe's pieces (recipes/malignancy_gpu.py), run on the CPU."""

import importlib.util
from pathlib import Path

import numpy as np
import torch

from ai_engine.models import registry
from ai_engine.models.heads import set_rows

RECIPE = Path(__file__).resolve().parents[2] / "ai_engine" / "train" / "recipes" / "malignancy_gpu.py"


def _recipe():
    spec = importlib.util.spec_from_file_location("malignancy_gpu", RECIPE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_saved_state_is_the_registry_member_with_the_margin_rows_dropped(tmp_path):
    """Trained with 3 extra margin logits, saved as the plain member: it loads strictly into the
    registry's demo network and gives exactly the trained network's first two logits."""
    g = _recipe()
    for name in ("densenet121-3d", "convnext-tiny-3d"):
        torch.manual_seed(0)
        trained = registry.build(name, "demo").eval()
        set_rows(trained, 5)
        with torch.no_grad():
            for p in trained.parameters():
                p.add_(0.01 * torch.randn_like(p))  # the margin rows too, so dropping the wrong ones shows
        g.save_plain(trained.state_dict(), tmp_path / f"{name}.pt")
        plain = registry.build(name, "demo").eval()
        plain.load_state_dict(torch.load(tmp_path / f"{name}.pt"))
        x = torch.rand(2, 1, 64, 64, 64)
        with torch.no_grad():
            assert torch.allclose(plain(x), trained(x)[:, :2], atol=1e-5)


def test_gpu_augmentation_keeps_a_centred_ball_centred_and_whole():
    """Rotations about the centre and flips move a centred ball nowhere; the noise is std 0.01."""
    g = _recipe()
    torch.manual_seed(0)
    z, y, x = np.mgrid[:32, :32, :32] - 15.5
    ball = torch.from_numpy((np.sqrt(z**2 + y**2 + x**2) < 8).astype(np.float32))[None, None].repeat(16, 1, 1, 1, 1)
    out = g.augment(ball)
    assert out.shape == ball.shape
    grid = torch.from_numpy(np.stack([z, y, x])).float()
    for sample in out[:, 0]:
        solid = (sample > 0.5).float()
        assert abs(float(solid.sum() - ball[0, 0].sum())) < 0.05 * float(ball[0, 0].sum())
        centroid = (grid * solid).sum((1, 2, 3)) / solid.sum()
        assert float(centroid.abs().max()) < 0.5
    background = out[:, 0, :4, :4, :4]
    assert 0.0 < float(background.std()) < 0.02  # some samples noisy (p .5), none noisier than 0.01
