"""The phantom-patch recipe's pieces (recipes/malignancy_phantom.py)."""

import numpy as np
import torch

from ai_engine.findings import NoduleType
from ai_engine.models import registry
from ai_engine.synthetic import make_ct_phantom
from ai_engine.synthetic.truth import NoduleSpec
from ai_engine.train.recipes import malignancy_phantom as recipe


def test_cut_patches_centre_each_nodule_on_an_anisotropic_grid():
    """A solid 12 mm ball 70 mm off the axis of a 0.9 × 0.9 × 1.25 mm phantom: the cube's centre
    voxel is inside it (a wrong voxel-to-1 mm scale would miss it by several mm) and the cube's edge
    is not; labels and margin come from the truth."""
    specs = [NoduleSpec(centre_mm=(-70.0, 20.0, 15.0), diameter_mm=12.0, morphology="round",
                        nodule_type=NoduleType.SOLID, calcified=False, cavitated=False, malignant=True,
                        solid_hu=40.0)]
    phantom = make_ct_phantom(5, (96, 192, 192), (0.9, 0.9, 1.25), nodule_spec=specs)
    for k in range(4):  # four draws of the jitter
        cubes, rows = recipe.cut_patches(phantom, np.random.default_rng(k))
        assert cubes.shape == (1, 64, 64, 64) and cubes.dtype == np.float16
        centre = float(cubes[0, 32, 32, 32])
        assert centre > (20 + 1000) / 1400, centre  # ≥ 20 HU in the lung window (-1000, 400)
        assert rows.tolist() == [[1.0, 0.0, 12.0, 5.0]]
        assert float(cubes[0, 32, 32, 0]) < centre  # 32 mm from the centre: not the ball


def test_stem_then_tail_is_the_whole_densenet():
    """The frozen stem's cached output fed to the tail gives the member's own logits."""
    torch.manual_seed(0)
    net = registry.build("densenet121-3d", "demo").eval()
    stem, tail = recipe.split_at_stem(net)
    x = torch.rand(2, 1, 64, 64, 64)
    with torch.no_grad():
        assert torch.allclose(tail(stem(x)), net(x), atol=1e-5)
        assert stem(x).shape == (2, 40, 16, 16, 16)


def test_refitted_layer_gives_the_regressions_probability():
    """fit_logistic finds the direction that made the labels, and set_logistic turns it into a
    2-logit layer whose softmax is exactly the regression's sigmoid."""
    rng = np.random.default_rng(0)
    f = rng.normal(3.0, 2.0, (600, 5))
    truth = np.array([1.5, -1.0, 0.0, 0.0, 0.5])
    y = (rng.random(600) < 1 / (1 + np.exp(-(f - 3.0) @ truth))).astype(int)
    w, b = recipe.fit_logistic(f, y, l2=1e-4)
    assert np.corrcoef(w, truth)[0, 1] > 0.95
    head = torch.nn.Linear(5, 2)
    recipe.set_logistic(head, w, b)
    with torch.no_grad():
        p = torch.softmax(head(torch.from_numpy(f).float()), 1)[:, 1].numpy()
    np.testing.assert_allclose(p, 1 / (1 + np.exp(-(f @ w + b))), atol=1e-5)
