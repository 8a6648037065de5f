"""The phantom-patch recipe's pieces (recipes/malignancy_phantom.py)."""

import numpy as np
import pytest
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
        assert rows.tolist() == [[1.0, 0.0, 12.0, 5.0, 0.0, 0.0]]  # … not calcified, solid
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


def test_fine_tune_keeps_the_best_two_logit_state(tmp_path, monkeypatch):
    """The shared loop learns a separable label and the size row's target, keeps the state of its
    best validation AUC with the auxiliary rows cut off (the registry's 2-logit layer), and saves
    nothing when it never beats the start."""

    class Net(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.head = torch.nn.Linear(4, recipe.N_MAL)
            recipe.widen(self)  # + margin rows and the size row

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.head(x)

    torch.manual_seed(0)
    x, vx = torch.randn(400, 4), torch.randn(200, 4)
    y = torch.stack([(x[:, 1] > 0).long(), torch.randint(0, 3, (400,))], 1)
    vy = (vx[:, 1] > 0).long().numpy()
    size = x[:, 2]
    monkeypatch.setattr(recipe, "SIZE_WEIGHT", 1.0)  # session 18's size loss on

    def run(lr: float) -> tuple[dict, Net]:
        net = Net()
        with torch.no_grad():
            net.head.weight.zero_()
            net.head.weight[1, 0] = 1.0  # starts on the wrong feature: validation AUC ≈ 0.5
        result = recipe._fine_tune(net, net, lambda idx: net(x[idx]), y, size,
                                   lambda: recipe._probabilities(net, vx), vy, steps=200, lr=lr)
        return recipe._save(result, tmp_path / f"{lr}.pt", {"lr": lr}), net

    learned, net = run(0.05)
    assert learned["history"][0]["val_auc"] < 0.65 and learned["best_val_auc"] > 0.95
    state = torch.load(tmp_path / "0.05.pt", weights_only=True)
    assert state["head.weight"].shape == (recipe.N_MAL, 4) and state["head.bias"].shape == (recipe.N_MAL,)
    with torch.no_grad():
        size_row = net(vx)[:, recipe.SIZE_ROW]
    assert np.corrcoef(size_row.numpy(), vx[:, 2].numpy())[0, 1] > 0.9
    still, _ = run(0.0)
    assert still["best_step"] == 0 and "best_state" not in still
    assert not (tmp_path / "0.0.pt").exists() and (tmp_path / "0.0.pt.json").exists()


def test_auxiliary_rows_targets_and_loss():
    """targets reads the calcified and type columns (-1 for shards written before them, refused when
    their losses are on); aux_loss adds each weighted term, so a row's loss moves only its own rows."""
    rows = np.array([[1, 2, 8.0, 7, 1, 2], [0, 0, 16.0, 7, 0, 0]], np.float64)
    y, size = recipe.targets(rows)
    assert y.tolist() == [[1, 2, 1, 2], [0, 0, 0, 0]] and size[0] == 0.0
    old_y, _ = recipe.targets(rows[:, :4])
    assert old_y[:, 2:].tolist() == [[-1, -1], [-1, -1]]
    logits = torch.zeros(2, recipe.TYPE_ROWS.stop, requires_grad=True)
    margin_only = recipe.aux_loss(logits, old_y, size, 0.0, 0.0, 0.0)
    assert float(margin_only) == pytest.approx(recipe.AUX_WEIGHT * np.log(3))
    full = recipe.aux_loss(logits, y, size, 1.0, 2.0, 3.0)
    expected = margin_only + float((size ** 2).mean()) + 2.0 * np.log(2) + 3.0 * np.log(3)
    assert float(full) == pytest.approx(float(expected), rel=1e-5)
    (grad,) = torch.autograd.grad(recipe.aux_loss(logits, y, size, 0.0, 1.0, 0.0), logits)
    moved = grad.abs().sum(0) > 0
    assert moved[recipe.CALC_ROWS].all() and moved[recipe.TYPE_ROWS].sum() == 0 and moved[:recipe.N_MAL].sum() == 0
    monkeypatch = pytest.MonkeyPatch()
    monkeypatch.setattr(recipe, "CALC_WEIGHT", 1.0)
    try:
        with pytest.raises(SystemExit, match="calcified and nodule_type"):
            recipe.targets(rows[:, :4])
    finally:
        monkeypatch.undo()


def test_population_patches_are_evaluates_nodules():
    """The population split cuts every nodule of the phantom evaluate would draw from the same seed
    (its default geometry, nothing conditioned), with its calcification and type in the rows."""
    from ai_engine.evaluate.synthetic import SyntheticEvalConfig
    from ai_engine.train.calibrate import EVAL_GEOMETRIES

    config = SyntheticEvalConfig()
    assert EVAL_GEOMETRIES[1] == (config.shape_zyx, config.spacing_mm)
    seed = 3_700_005  # four nodules
    truths = make_ct_phantom(seed, config.shape_zyx, config.spacing_mm).nodules
    cubes, rows = recipe.population_patches(seed)
    assert len(cubes) == len(truths) > 0 and rows.shape == (len(truths), len(recipe.FIELDS))
    assert rows[:, recipe.FIELDS.index("diameter_mm")].tolist() == [t.diameter_mm for t in truths]
    assert rows[:, recipe.FIELDS.index("calcified")].tolist() == [float(t.calcified) for t in truths]
    assert [recipe.NODULE_TYPES[int(k)] for k in rows[:, recipe.FIELDS.index("nodule_type")]] == \
        [t.nodule_type for t in truths]
