"""Architectures (paper and demo profiles), registry, model inputs and model cards."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from ai_engine.models import (
    ModelCard,
    ModelCardError,
    UnknownModelError,
    WeightsIntegrityError,
    build,
    entry,
    load_model,
    read_card,
    save_checkpoint,
)
from ai_engine.models.convnext import ConvNeXt3D
from ai_engine.models.inputs import crop_centered, orthogonal_planes, window01


@pytest.fixture(autouse=True)
def _threads():
    torch.set_num_threads(2)


@torch.inference_mode()
def _forward(name: str, profile: str, shape: tuple[int, ...]) -> torch.Tensor:
    torch.manual_seed(0)
    return build(name, profile).eval()(torch.rand(*shape))


@pytest.mark.parametrize("profile", ["paper", "demo"])
def test_unet_segments_every_voxel(profile):
    assert _forward("unet3d", profile, (1, 1, 32, 32, 32)).shape == (1, 2, 32, 32, 32)


@pytest.mark.parametrize("name", ["densenet121-3d", "convnext-tiny-3d"])
@pytest.mark.parametrize("profile", ["paper", "demo"])
def test_malignancy_models_give_two_logits(name, profile):
    out = _forward(name, profile, (1, 1, 64, 64, 64))
    assert out.shape == (1, 2) and torch.isfinite(out).all()


@pytest.mark.parametrize("name", ["efficientnet-b3", "resnet50"])
@pytest.mark.parametrize("profile", ["paper", "demo"])
def test_subtype_models_give_three_logits_on_25d_input(name, profile):
    out = _forward(name, profile, (1, 3, 96, 96))
    assert out.shape == (1, 3) and torch.isfinite(out).all()


def test_paper_unet_has_the_paper_configuration():
    net = build("unet3d", "paper")
    convs = [m for m in net.modules() if isinstance(m, torch.nn.Conv3d)]
    dropouts = [m.p for m in net.modules() if isinstance(m, torch.nn.Dropout3d | torch.nn.Dropout)]
    assert {c.out_channels for c in convs} >= {16, 32, 64, 128, 256}
    assert all(c.kernel_size == (3, 3, 3) for c in convs if c.kernel_size != (1, 1, 1))
    assert dropouts and set(dropouts) == {0.2}


def test_paper_densenet_is_densenet121():
    net = build("densenet121-3d", "paper")
    blocks = [len(list(b.children())) for n, b in net.features.named_children() if n.startswith("denseblock")]
    assert blocks == [6, 12, 24, 16]  # 121 layers: 2·58 conv in blocks + 3 transitions + stem + head


def test_convnext_tiny_3d_stages():
    net = build("convnext-tiny-3d", "paper")
    assert isinstance(net, ConvNeXt3D)
    assert [len(s) for s in net.stages] == [3, 3, 9, 3]
    assert [s[0].dwconv.in_channels for s in net.stages] == [96, 192, 384, 768]
    assert all(s[0].dwconv.kernel_size == (7, 7, 7) and s[0].dwconv.groups == s[0].dwconv.in_channels
               for s in net.stages)
    assert net.downsample_layers[0][0].kernel_size == (4, 4, 4) == net.downsample_layers[0][0].stride
    assert all(d[1].kernel_size == (2, 2, 2) == d[1].stride for d in net.downsample_layers[1:])
    block = net.stages[2][0]
    assert block.pwconv1.out_features == 4 * 384  # inverted bottleneck
    assert torch.allclose(block.gamma, torch.full((384,), 1e-6))  # layer scale
    assert net.stages[3][-1].drop_path.p == pytest.approx(0.1)  # stochastic depth, linear schedule


def test_convnext_stem_stride_sets_the_first_stage_grid():
    """stem_stride 2 cuts 2 mm cubes: a 64³ patch reaches the first stage as 32³, not 16³."""
    seen = {}
    for stride in (4, 2):
        net = ConvNeXt3D(1, 2, depths=(1, 1), dims=(8, 16), stem_stride=stride).eval()
        stem = net.downsample_layers[0][0]
        assert stem.kernel_size == (stride,) * 3 == stem.stride
        with torch.no_grad():
            seen[stride] = net.downsample_layers[0](torch.rand(1, 1, 64, 64, 64)).shape[2:]
            assert net(torch.rand(2, 1, 64, 64, 64)).shape == (2, 2)
    assert seen == {4: (16, 16, 16), 2: (32, 32, 32)}


def test_stochastic_depth_only_while_training():
    net = ConvNeXt3D(1, 2, depths=(2,), dims=(8,), drop_path_rate=1.0)
    last = net.stages[0][1]
    assert last.drop_path.p == 1.0 and net.stages[0][0].drop_path.p == 0.0  # linear schedule
    last.gamma.data.fill_(1.0)
    x = net.downsample_layers[0](torch.rand(4, 1, 16, 16, 16))
    net.train()
    assert torch.equal(last(x), x)  # p=1: the residual branch is dropped for every sample
    net.eval()
    assert not torch.allclose(last(x), x)


def test_registry_refuses_unknown_names_and_profiles():
    with pytest.raises(UnknownModelError, match="unknown model 'vgg'"):
        entry("vgg")
    with pytest.raises(UnknownModelError, match="unknown profile 'huge'"):
        build("unet3d", "huge")


def test_inputs_window_crop_planes():
    hu = np.array([-2000.0, -1000.0, -300.0, 400.0, 3000.0])
    assert np.allclose(window01(hu, (-1000, 400)), [0, 0, 0.5, 1, 1])
    vol = np.arange(10 * 10 * 10, dtype=np.float32).reshape(10, 10, 10)
    crop = crop_centered(vol, (0, 5, 9), (4, 4, 4), fill=-1)
    assert crop.shape == (4, 4, 4)
    assert crop[0, 0, 0] == -1 and crop[2, 2, 2] == vol[0, 5, 9] and crop[2, 2, 3] == -1
    planes = orthogonal_planes(vol)
    assert planes.shape == (3, 10, 10)
    assert np.array_equal(planes[0], vol[5]) and np.array_equal(planes[2], vol[:, :, 5])


def _card(name="densenet121-3d", profile="demo") -> ModelCard:
    return ModelCard(name=name, architecture="test", profile=profile, data_source="synthetic",
                     input_spec=entry(name).spec, metrics={"test": {"auc": 0.5}})


def test_checkpoint_round_trip_with_card(tmp_path):
    torch.manual_seed(1)
    net = build("densenet121-3d", "demo")
    card = save_checkpoint(net, _card(), tmp_path, half=True)
    on_disk = json.loads((tmp_path / "densenet121-3d-demo.json").read_text())
    assert on_disk["sha256"] == card.sha256 and len(card.sha256) == 64
    assert on_disk["weights_dtype"] == "float16" and on_disk["code_version"].startswith("0.1.0")
    loaded, read = load_model("densenet121-3d", tmp_path, "demo")
    assert read == card and not loaded.training
    assert read.model_info().synthetic and read.model_info().sha256 == card.sha256
    x = torch.rand(2, 1, 32, 32, 32)
    with torch.inference_mode():
        assert torch.allclose(loaded(x), net.eval()(x), atol=1e-2)  # fp16 storage


def test_corrupted_weights_are_refused(tmp_path):
    card = save_checkpoint(build("unet3d", "demo"), _card("unet3d"), tmp_path)
    weights = tmp_path / card.weights_file
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(WeightsIntegrityError, match=f"{weights.name}.*sha256.*refusing"):
        load_model("unet3d", tmp_path, "demo")


def test_missing_or_mismatched_card_is_refused(tmp_path):
    with pytest.raises(ModelCardError, match="no model card for 'unet3d'"):
        read_card(tmp_path, "unet3d", "demo")
    save_checkpoint(build("unet3d", "demo"), _card("unet3d"), tmp_path)
    (tmp_path / "unet3d-paper.json").write_text((tmp_path / "unet3d-demo.json").read_text())
    with pytest.raises(ModelCardError, match="describes 'unet3d' \\(demo\\)"):
        read_card(tmp_path, "unet3d", "paper")
    (tmp_path / "unet3d-demo.pt").unlink()
    with pytest.raises(WeightsIntegrityError, match="missing"):
        load_model("unet3d", tmp_path, "demo")
