"""calibrate_detection on N_VAL validation phantoms (seed 0, ≤ 1 FP/scan, bf16 decision) and
calibrate_malignancy on the same phantoms (the ensemble's malignant threshold), then evaluate_pipeline
on N_TEST test phantoms; the results are written into the cards.
Usage: python calibrate.py WEIGHTS_DIR N_VAL N_TEST"""
import json, sys, torch, time
torch.set_num_threads(2)
from ai_engine.train.calibrate import calibrate_detection, calibrate_malignancy, evaluate_pipeline
d = sys.argv[1]; t=time.time()
v = calibrate_detection(d, seed=0, n_val=int(sys.argv[2]))
print("validation", json.dumps(v, default=str), f"{time.time()-t:.0f}s", flush=True)
print("malignancy", json.dumps(calibrate_malignancy(d, seed=0, n_val=int(sys.argv[2])), default=str), f"{time.time()-t:.0f}s", flush=True)
print("test", json.dumps(evaluate_pipeline(d, seed=0, n_test=int(sys.argv[3])), default=str), f"{time.time()-t:.0f}s", flush=True)
