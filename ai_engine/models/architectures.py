"""Builders for every architecture, per profile.

"paper" is the configuration the paper describes; "demo" is a narrower variant of the same family
that trains on a 2-core CPU in minutes (the shipped synthetic-trained weights use it).
"""

from __future__ import annotations

from monai.networks.nets import DenseNet, DenseNet121, EfficientNet, EfficientNetBN, UNet, resnet10, resnet50
from torch import nn

from ai_engine.models.convnext import ConvNeXt3D, convnext_tiny_3d

# EfficientNet-B0 block definitions (Tan & Le 2019), scaled down for the demo profile.
_B0_BLOCKS = [
    "r1_k3_s11_e1_i32_o16_se0.25",
    "r2_k3_s22_e6_i16_o24_se0.25",
    "r2_k5_s22_e6_i24_o40_se0.25",
    "r3_k3_s22_e6_i40_o80_se0.25",
    "r3_k5_s11_e6_i80_o112_se0.25",
    "r4_k5_s22_e6_i112_o192_se0.25",
    "r1_k3_s11_e6_i192_o320_se0.25",
]


def unet3d(profile: str) -> nn.Module:
    """MONAI 3D U-Net, 2 output channels (background, nodule).

    Demo: one level fewer, batch norm (statistics fixed at inference, so 48³ training patches and
    96³ inference windows are normalised alike) and no dropout (it slowed a short CPU training).
    """
    if profile == "paper":
        return UNet(3, 1, 2, channels=(16, 32, 64, 128, 256), strides=(2, 2, 2, 2),
                    num_res_units=2, dropout=0.2)
    return UNet(3, 1, 2, channels=(16, 32, 64, 128), strides=(2, 2, 2), num_res_units=1, norm="batch")


def densenet121_3d(profile: str) -> nn.Module:
    """MONAI DenseNet121-3D benign/malignant classifier.

    Demo: 3 dense blocks of 3-6-6 layers (32 initial features, growth 16; 525k parameters), and no
    stem max-pool, so the first block sees the 64 mm patch at 2 mm rather than 4 mm: with it, the
    1–2 mm spicules and lobulations that separate malignant from benign morphology were lost and
    held-out AUC stalled at the size/density-only level. The width is session 15's: trained side
    by side from scratch on a GPU, it told lobulated from round patches with AUC 0.87 where the
    earlier 16-feature, growth-8, 2-4-4 demo reached 0.72 (recipes README).
    """
    if profile == "paper":
        return DenseNet121(spatial_dims=3, in_channels=1, out_channels=2)
    net = DenseNet(3, 1, 2, init_features=32, growth_rate=16, block_config=(3, 6, 6), bn_size=4)
    net.features.pool0 = nn.Identity()
    return net


def convnext_tiny3d(profile: str) -> nn.Module:
    """ConvNeXt-Tiny-3D benign/malignant classifier.

    Demo: depths 1-1-2-1, dims 16-32-64-128, layer scale starting at 0.1 and no stochastic depth:
    with the paper's 1e-6 the residual branches stayed near zero over a short CPU training and the
    network did not learn (validation AUC ≈ 0.5). It trains at lr 2e-4 (at 1e-3 and 3e-4 it
    collapsed to chance).
    """
    if profile == "paper":
        return convnext_tiny_3d(in_channels=1, num_classes=2)
    return ConvNeXt3D(1, 2, depths=(1, 1, 2, 1), dims=(16, 32, 64, 128), drop_path_rate=0.0,
                      layer_scale_init=0.1)


def efficientnet_b3(profile: str) -> nn.Module:
    """EfficientNet-B3 on 2.5D patches (3 orthogonal planes) → 3 NSCLC subtypes.

    Demo: the B0 block layout at width 0.5 / depth 0.5 (a few hundred k parameters), with batch-norm
    momentum 0.1 (MONAI's 0.01 leaves the running statistics at their initial values after the
    few hundred steps a CPU training takes, and eval-mode outputs were then at chance).
    """
    if profile == "paper":
        return EfficientNetBN("efficientnet-b3", spatial_dims=2, in_channels=3, num_classes=3,
                              pretrained=False)
    return EfficientNet(_B0_BLOCKS, spatial_dims=2, in_channels=3, num_classes=3,
                        width_coefficient=0.5, depth_coefficient=0.5, image_size=64,
                        dropout_rate=0.2, norm=("batch", {"eps": 1e-3, "momentum": 0.1}))


def resnet50_2d(profile: str) -> nn.Module:
    """ResNet50 on the same 2.5D input (the paper's comparison architecture; demo: ResNet10)."""
    if profile == "paper":
        return resnet50(spatial_dims=2, n_input_channels=3, num_classes=3)
    return resnet10(spatial_dims=2, n_input_channels=3, num_classes=3)
