"""The node's settings reach the CT pipeline: device and the U-Net's mirrored passes."""

from __future__ import annotations

from dicom_node.config import Settings
from dicom_node.pipeline import Pipeline


def test_device_and_mirrored_passes_come_from_settings(settings_factory, monkeypatch):
    default = Pipeline(settings_factory(), session_factory=None).pipeline_config()
    assert default.device == "cpu" and default.tta is True

    monkeypatch.setenv("PULMONODE_UNET_MIRRORED_PASSES", "false")
    monkeypatch.setenv("PULMONODE_DEVICE", "cuda:1")
    settings = Settings(demo_mode=True)
    config = Pipeline(settings, session_factory=None).pipeline_config()
    assert config.tta is False and config.device == "cuda:1"
