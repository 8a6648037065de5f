"""calibrate_flips on N_VAL validation phantoms (seed 0): which mirrored U-Net passes the pipeline
averages (calibrate.FLIP_CHOICES, by validation CPM), written into the U-Net card. The detection
scores move with it, so run calibrate.py afterwards.
Usage: [BLENDS=constant,gaussian] python flips.py WEIGHTS_DIR N_VAL  (BLENDS: which blendings to score,
all of calibrate.BLEND_CHOICES by default; constant alone takes half the time)"""
import json, os, sys, time, torch
torch.set_num_threads(2)
from ai_engine.train.calibrate import BLEND_CHOICES, calibrate_flips
t = time.time()
blends = tuple(os.environ.get("BLENDS", ",".join(BLEND_CHOICES)).split(","))
print("flips", json.dumps(calibrate_flips(sys.argv[1], seed=0, n_val=int(sys.argv[2]), blends=blends), default=str),
      f"{time.time()-t:.0f}s", flush=True)
