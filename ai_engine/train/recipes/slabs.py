"""Switch a U-Net card to slab windows (InputSpec.sw_windows = "slabs": z-slabs spanning the lung box
instead of 96³ cubes), then calibrate_flips with constant blending on N_VAL validation phantoms
(seed 0), which records the comparison in the card and keeps the best-CPM choice of mirrored passes.
The detection scores move with the windows, so run calibrate.py and plain_pass.py afterwards.
Usage: python slabs.py WEIGHTS_DIR N_VAL"""
import json, sys, time, torch
from dataclasses import replace
torch.set_num_threads(2)
from ai_engine.models.card import read_card, write_card
from ai_engine.train.calibrate import calibrate_flips
d, t = sys.argv[1], time.time()
card = read_card(d, "unet3d", "demo")
write_card(replace(card, input_spec=replace(card.input_spec, sw_windows="slabs")), d)
print("flips", json.dumps(calibrate_flips(d, seed=0, n_val=int(sys.argv[2]), blends=("constant",)), default=str),
      f"{time.time()-t:.0f}s", flush=True)
