"""calibrate_detection (8 validation phantoms, seed 0, ≤ 1 FP/scan) and/or evaluate_pipeline (12 test phantoms)."""
import json, sys
import torch
torch.set_num_threads(2)
from ai_engine.train.calibrate import calibrate_detection, evaluate_pipeline

d, what = sys.argv[1], sys.argv[2]
if "val" in what:
    v = calibrate_detection(d, seed=0)
    print("validation", json.dumps(v, default=str), flush=True)
if "test" in what:
    print("test", json.dumps(evaluate_pipeline(d, seed=0), default=str), flush=True)
