"""Segmentation training patches in shards of 25 phantoms, sampled exactly as
``ai_engine.train.data.segmentation_set`` samples for ``pulmonode train segmentation`` (phantoms
scanned at varied spacing, resampled to 1 mm as inference does, linearly resampled mask ≥ 0.5 as the
target); shards let two processes share the work and let training reload without regenerating.
Shard file: x float16 [n,1,48,48,48], y uint8, ids.
Usage: python unet_shards.py SEED START STOP OUT_DIR [faint|hilar]
"hilar": as "faint", with half the extra nodules placed near the hilum, against the large vessels and
bronchi, where round F still missed 4–5 mm solid nodules (session 5).
"faint": 2–4 extra nodules of 4–8 mm (part-solid 6–10 mm), solid .4 / part-solid .2 / ground-glass .4,
the kinds the round-E U-Net gave no component at all under ``pulmonode evaluate`` (session 5).
Session 3: seed 0, phantoms 0..300 in two processes (0 150 and 150 300) with the extra small nodules
0.6 solid / 0.2 part-solid / 0.2 ground-glass, then seed 1, 0..200 with today's 0.4 / 0.3 / 0.3
(``data.SMALL_NODULE_TYPES``). Session 4: seed 2, 0..300 in two processes, in-plane spacing
0.7–1.4 mm (``data.IN_PLANE_SPACING_MM``; sessions 2–3 drew 0.7–1.0). Session 5: seed 3, 0..300, faint. Session 2's round B used an earlier version of this script with
nearest-resampled masks (git history)."""
import sys, time
from dataclasses import replace
import numpy as np, torch
torch.set_num_threads(1)
from ai_engine.models.inputs import crop_centered
from ai_engine.findings import NoduleType
from ai_engine.train.data import SmallNodules, _patch_centres, _synthetic_case
FAINT = SmallNodules(count=(2, 4), span_mm=4.0, types=((NoduleType.SOLID, 0.4), (NoduleType.PART_SOLID, 0.2),
                                                       (NoduleType.GROUND_GLASS, 0.4)))
P = 48
EXTENT_MM = (200, 288, 288)  # segmentation_set's default phantom extent
SEED, START, STOP, OUT = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
SMALL = {"faint": FAINT, "hilar": replace(FAINT, central=0.5)}.get((sys.argv[5:] or [""])[0], SmallNodules())
t0 = time.time()
rng = np.random.default_rng([SEED, START])
for s0 in range(START, STOP, 25):
    X, Y, I = [], [], []
    for i in range(s0, min(s0 + 25, STOP)):
        pid, image01, mask, lung, centres = _synthetic_case(SEED, i, EXTENT_MM, SMALL)
        for c in _patch_centres(rng, centres, image01, mask, lung, P):
            X.append(crop_centered(image01, c, (P,) * 3).astype(np.float16))
            Y.append(crop_centered(mask, c, (P,) * 3))
            I.append(pid)
    np.savez(f"{OUT}/shard_{SEED}_{s0:05d}.npz", x=np.stack(X)[:, None], y=np.stack(Y)[:, None], ids=np.array(I))
    print(f"shard {s0} patches={len(X)} {time.time()-t0:.0f}s", flush=True)
