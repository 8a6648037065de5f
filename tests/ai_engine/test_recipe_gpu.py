"""The GPU training recipes' pieces (recipes/malignancy_gpu.py, malignancy_phantom_gpu.py) and the GPU
throughput bench, run on the CPU."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
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


def test_phantom_gpu_recipe_targets_and_learning_rate():
    """malignancy_phantom_gpu: the size target is the standardised log diameter (8 mm → 0, a factor
    e^0.5 larger → 1), after the malignancy, margin, calcified and type columns; the learning rate rises linearly
    over WARMUP steps, then follows the cosine of the time budget to zero."""
    from ai_engine.train.recipes import malignancy_phantom_gpu as g

    rows = np.array([[1, 2, 8.0, 7, 0, 1], [0, 0, 8.0 * np.exp(0.5), 7, 1, 0]], np.float64)
    assert np.allclose(g.rows_to_targets(rows).numpy(), [[1, 2, 0, 1, 0.0], [0, 0, 1, 0, 1.0]], atol=1e-6)
    assert g.lr_at(1e-3, 0, 0.0) == 0.0
    assert g.lr_at(1e-3, g.WARMUP // 2, 0.0) == pytest.approx(5e-4)
    assert g.lr_at(1e-3, g.WARMUP, 0.0) == pytest.approx(1e-3)
    assert g.lr_at(1e-3, 10 * g.WARMUP, 0.5) == pytest.approx(5e-4)
    assert g.lr_at(1e-3, 10 * g.WARMUP, 1.0) == pytest.approx(0.0, abs=1e-12)


def test_phantom_gpu_candidates_save_as_loadable_members(tmp_path):
    """Each candidate, widened for the auxiliary rows and saved by save_plain, loads strictly into
    the network it will ship as (the registry's member, or the 2 mm-stem ConvNeXt)."""
    from ai_engine.models.convnext import ConvNeXt3D
    from ai_engine.train.recipes import malignancy_phantom_gpu as g
    from ai_engine.train.recipes.malignancy_phantom import TYPE_ROWS, widen

    for name, (build, _) in g.CANDIDATES.items():
        net = build()
        widen(net)
        assert net(torch.rand(1, 1, 64, 64, 64)).shape == (1, TYPE_ROWS.stop)
        g.save_plain(net.state_dict(), tmp_path / f"{name}.pt")
        plain = (ConvNeXt3D(1, 2, **g.CONVNEXT_S2) if "s2" in name
                 else registry.build("densenet121-3d" if "densenet" in name else "convnext-tiny-3d", "demo"))
        plain.load_state_dict(torch.load(tmp_path / f"{name}.pt"))


def test_phantom_gpu_run_writes_best_and_last_members_and_a_summary(tmp_path, monkeypatch):
    """A few seconds of the run on the CPU (one validation phantom, one worker): the best and the last
    state of the candidate load into the registry's member, and the summary records the steps."""
    import json

    from ai_engine.train.recipes import malignancy_phantom_gpu as g

    monkeypatch.setattr(g, "N_VAL", 1)
    monkeypatch.setattr(g, "MIN_FILLED", 8)
    monkeypatch.setattr(g, "EVAL_EVERY_S", 0.0)
    g.main(tmp_path, 2.0, 1, ["convnext-warm"])
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["steps"] >= 1 and summary["patches_rendered"] >= 8
    assert set(summary["candidates"]) == {"convnext-warm"} and summary["history"]
    for file in ("convnext-warm.pt", "convnext-warm-last.pt"):
        registry.build("convnext-tiny-3d", "demo").load_state_dict(torch.load(tmp_path / file))
    with pytest.raises(SystemExit, match="unknown candidate.*resnet"):
        g.main(tmp_path, 1.0, 1, ["resnet"])


def test_gpu_train_throughput_bench_smoke():
    """bench/gpu_train_throughput.py --smoke runs (so the GPU session's planning aid cannot rot) and
    reports the rendering rate, the augmentation and a step time in both memory formats."""
    import json
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, str(root / "bench" / "gpu_train_throughput.py"), "--smoke"],
                          capture_output=True, text=True, timeout=300, cwd=root)
    assert proc.returncode == 0, proc.stderr[-2000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["phantoms_per_s"]["1 worker"] > 0 and result["augment_ms"] > 0
    step = result["convnext-warm"]
    assert step["ms_per_step"] > 0 and step["channels_last_3d_ms"] > 0 and step["channels_last_speedup"] > 0


def test_session19_densenet_is_refused_when_its_file_changed(tmp_path, monkeypatch):
    """The kept state is loaded only with session 19's sha256: one byte changed and it is refused."""
    from ai_engine.train.recipes import malignancy_phantom_gpu as g

    copy = tmp_path / "densenet-scratch-s19.pt"
    data = bytearray(g.S19_DENSENET.read_bytes())
    data[-1] ^= 1
    copy.write_bytes(bytes(data))
    monkeypatch.setattr(g, "S19_DENSENET", copy)
    with pytest.raises(SystemExit, match="sha256"):
        g.session19_densenet()
