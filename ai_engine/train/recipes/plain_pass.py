"""calibrate_plain_pass on N_VAL validation phantoms (seed 0): the detection threshold the pipeline
uses when it runs the U-Net's plain pass alone (unet_mirrored_passes = false), written into the card.
Usage: python plain_pass.py WEIGHTS_DIR N_VAL"""
import json, sys, time, torch
torch.set_num_threads(2)
from ai_engine.train.calibrate import calibrate_plain_pass
t = time.time()
print("plain pass", json.dumps(calibrate_plain_pass(sys.argv[1], seed=0, n_val=int(sys.argv[2])), default=str),
      f"{time.time()-t:.0f}s", flush=True)
