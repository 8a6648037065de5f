"""Segmentation training patches from phantoms scanned at varied spacing and resampled to 1 mm
exactly as inference does (the sampling ``ai_engine.train.data.segmentation_set`` now implements for
``pulmonode train segmentation``). Shards of 25 phantoms: x float16 [n,1,P,P,P], y uint8, ids.
Usage: python unet_shards.py SEED START STOP OUT_DIR   (shipped weights: 0 0 200)."""
import sys, time
import numpy as np, torch
torch.set_num_threads(1)
from ai_engine.findings import NoduleType
from ai_engine.models.inputs import crop_centered, window01
from ai_engine.models.registry import LUNG_WINDOW_HU
from ai_engine.preprocess import VolumeGeometry, resample_isotropic, resample_to_reference
from ai_engine.synthetic import NoduleSpec, make_ct_phantom
P = 48
SEED, START, STOP, OUT = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
t0 = time.time()

def case(i):
    rng = np.random.default_rng([SEED, i, 5])
    sx = float(rng.uniform(0.7, 1.0)); sz = float(rng.choice([1.0, 1.25, 1.5, 2.0]))
    shape = (int(200 / sz), int(300 / sx), int(300 / sx))
    n_small = int(rng.integers(1, 4))
    kinds = [NoduleType.SOLID, NoduleType.PART_SOLID, NoduleType.GROUND_GLASS]
    types = [kinds[k] for k in rng.choice(3, size=n_small, p=[.6, .2, .2])]
    specs = [NoduleSpec(diameter_mm=float(rng.uniform(4, 10) if t != NoduleType.PART_SOLID else rng.uniform(6, 12)),
                        nodule_type=t) for t in types]
    specs += [NoduleSpec() for _ in range(int(rng.integers(0, 3)))]
    ph = make_ct_phantom(seed=int(rng.integers(2**31)), shape_zyx=shape, spacing_mm=(sx, sx, sz), nodule_spec=specs)
    iso = resample_isotropic(ph.volume, 1.0)
    img = window01(iso.hu, LUNG_WINDOW_HU)
    lab = resample_to_reference(np.asarray(ph.nodule_mask).astype(np.uint16), VolumeGeometry.of(ph.volume), VolumeGeometry.of(iso), "nearest")
    lung = resample_to_reference(np.asarray(ph.lung_mask).astype(np.uint8), VolumeGeometry.of(ph.volume), VolumeGeometry.of(iso), "nearest") > 0
    mask = (lab > 0).astype(np.uint8)
    cs = []
    for k in np.unique(lab[lab > 0]):
        c = np.argwhere(lab == k).mean(0)
        d = (lab == k).sum() ** (1 / 3)
        cs += [c + rng.uniform(-P / 4, P / 4, 3) for _ in range(3 if d < 10 else 2)]
    npos = len(cs)
    from scipy import ndimage
    near = ndimage.binary_dilation(mask > 0, iterations=8)
    free = lung & ~near
    dense = np.argwhere(free & (iso.hu > -500))
    anyl = np.argwhere(free)
    nneg = max(npos, 4)
    cs += [anyl[k] for k in rng.integers(len(anyl), size=nneg // 4)]
    src = dense if len(dense) else anyl
    cs += [src[k] for k in rng.integers(len(src), size=nneg - nneg // 4)]
    xs = [crop_centered(img, c, (P,) * 3).astype(np.float16) for c in cs]
    ys = [crop_centered(mask, c, (P,) * 3) for c in cs]
    return xs, ys, [f"seg-{SEED}-{i}"] * len(cs)

for s0 in range(START, STOP, 25):
    X, Y, I = [], [], []
    for i in range(s0, min(s0 + 25, STOP)):
        x, y, ids = case(i); X += x; Y += y; I += ids
    np.savez(f"{OUT}/shard_{SEED}_{s0:05d}.npz", x=np.stack(X)[:, None], y=np.stack(Y)[:, None], ids=np.array(I))
    print(f"shard {s0} patches={len(X)} {time.time()-t0:.0f}s", flush=True)
