"""Benchmark: seconds per CT for each pipeline stage, and the U-Net's achieved GFLOP/s against a
matmul measured in the same run (so the numbers are comparable on a shared or throttled CPU).

    python bench/inference.py            # 512×512×300 phantom at 0.7×0.7×1.0 mm
    python bench/inference.py --smoke    # a small phantom, seconds

Also times the U-Net's sliding window under each runtime (eager fp32, contiguous and channels-last;
TorchScript frozen; torch.compile with inductor freezing; bf16 autocast, contiguous and channels-last,
and compiled) and says whether each matches eager fp32 (voxel agreement of the thresholded mask).
"""

from __future__ import annotations

import argparse
import copy
import json
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ai_engine.models.precision import autocast, bf16_fast  # noqa: E402
from ai_engine.pipelines import CTModels, PipelineConfig, analyze_ct  # noqa: E402
from ai_engine.pipelines.ct_nodules import segment  # noqa: E402
from ai_engine.pipelines.inference import prepare, windows  # noqa: E402
from ai_engine.pipelines.models import SHIPPED_WEIGHTS_DIR, LoadedModel  # noqa: E402
from ai_engine.pipelines.timing import StageTimer  # noqa: E402
from ai_engine.preprocess import lung_bbox  # noqa: E402
from ai_engine.synthetic import make_ct_phantom  # noqa: E402
from monai.inferers import sliding_window_inference  # noqa: E402

FULL = {"shape_zyx": (300, 512, 512), "spacing_mm": (0.7, 0.7, 1.0)}
SMOKE = {"shape_zyx": (48, 96, 96), "spacing_mm": (1.0, 1.0, 1.5)}  # ~1 window: seconds


def conv_flops(model: torch.nn.Module, x: torch.Tensor) -> float:
    """Multiply-add FLOPs (×2) of every Conv3d / ConvTranspose3d for one forward pass of ``x``."""
    total = [0.0]

    def hook(m, inp, out):
        k = float(np.prod(m.kernel_size)) * m.in_channels / m.groups
        n = out.numel() if isinstance(m, torch.nn.Conv3d) else inp[0].numel() * m.out_channels / m.in_channels
        total[0] += 2.0 * k * n

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (torch.nn.Conv3d, torch.nn.ConvTranspose3d))]
    with torch.inference_mode():
        model(x)
    for h in handles:
        h.remove()
    return total[0]


def matmul_gflops(n: int, dtype: torch.dtype, repeats: int = 5) -> float:
    a, b = torch.rand(n, n, dtype=dtype), torch.rand(n, n, dtype=dtype)
    a @ b
    t = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2.0 * n**3 * repeats / (time.perf_counter() - t) / 1e9


def timed(fn: Callable[[], torch.Tensor], repeats: int) -> tuple[float, torch.Tensor]:
    out = fn()
    t = time.perf_counter()
    for _ in range(repeats):
        out = fn()
    return (time.perf_counter() - t) / repeats, out


def runtimes(model: torch.nn.Module, roi: tuple[int, ...], batch: int, smoke: bool) -> dict[str, torch.nn.Module]:
    """The U-Net under each runtime, each on its own copy of the weights in its own memory format
    (compiled variants built here; compile time not counted)."""
    example = torch.rand(batch, 1, *roi)

    def laid_out(channels_last: bool) -> torch.nn.Module:
        return prepare(copy.deepcopy(model), channels_last, torch.device("cpu"), 5)

    out: dict[str, torch.nn.Module] = {"eager fp32": laid_out(False), "eager fp32 channels_last_3d": laid_out(True)}
    with torch.no_grad():
        out["torchscript frozen fp32"] = torch.jit.freeze(torch.jit.trace(laid_out(False), example))
    if not smoke:
        import torch._inductor.config as inductor_config

        inductor_config.freezing = True
        out["torch.compile freezing fp32"] = torch.compile(laid_out(False), dynamic=False)
    if bf16_fast("cpu"):  # elsewhere autocast emulates bf16 (tens of times slower than fp32)
        out["eager bf16 autocast"] = _Autocast(laid_out(False))
        out["eager bf16 autocast channels_last_3d"] = _Autocast(laid_out(True))
        if not smoke:  # compiled for one window shape: a new lung box recompiles (seconds), so not shipped
            out["torch.compile freezing bf16 channels_last_3d"] = torch.compile(_Autocast(laid_out(True)), dynamic=False)
    return out


def card_runtime(seg: LoadedModel) -> str:
    """Which of ``runtimes`` the pipeline gives the U-Net (its registry memory format, its card's precision)."""
    bf16 = seg.card.input_spec.bf16_autocast and bf16_fast("cpu")
    return f"eager {'bf16 autocast' if bf16 else 'fp32'}{' channels_last_3d' if seg.channels_last else ''}"


class _Autocast(torch.nn.Module):
    def __init__(self, model: torch.nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with autocast(True, "cpu"):
            return self.model(x).float()


def bench_unet(models: CTModels, volume, smoke: bool) -> dict:
    seg = models.segmentation
    spec = seg.card.input_spec
    scan = segment(volume, seg, PipelineConfig(), StageTimer())
    bbox = lung_bbox(scan.lungs, PipelineConfig().lung_margin_mm, scan.volume.spacing_mm)
    roi = torch.from_numpy(np.ascontiguousarray(scan.image01[bbox]))[None, None]
    window, overlap = windows(tuple(roi.shape[2:]), spec)
    window_flops = conv_flops(seg.module, torch.rand(1, 1, *window))
    n_windows = _count_windows(roi.shape[2:], window, overlap)
    rows, reference = {}, None
    nets = runtimes(seg.module, window, spec.sw_batch_size, smoke)
    other = "patch" if spec.sw_windows == "slabs" else "slabs"  # the card's runtime, the other windows
    card_name = card_runtime(seg)
    nets[f"card's runtime, {other} windows"] = nets[card_name]  # eager: any window shape
    other_window, other_overlap = windows(tuple(roi.shape[2:]), replace(spec, sw_windows=other))
    other_flops = conv_flops(seg.module, torch.rand(1, 1, *other_window)) * _count_windows(roi.shape[2:], other_window, other_overlap)
    for name, net in nets.items():
        w, o, flops = ((other_window, other_overlap, other_flops) if name.startswith("card's")
                       else (window, overlap, window_flops * n_windows))

        def run(net=net, w=w, o=o):
            with torch.inference_mode():
                return torch.softmax(sliding_window_inference(roi, w, spec.sw_batch_size, net,
                                                              overlap=o, mode=spec.sw_blend), 1)[0, 1]
        seconds, prob = timed(run, 1)
        mask = prob >= spec.threshold("probability")
        reference = mask if reference is None else reference
        agree = float((mask == reference).float().mean())
        union = int((mask | reference).sum())
        rows[name] = {"seconds": seconds, "gflops_per_s": flops / seconds / 1e9,
                      "voxel_agreement": agree,
                      "mask_dice_vs_fp32": 1.0 if union == 0 else 2 * int((mask & reference).sum()) / (int(mask.sum()) + int(reference.sum()))}
    return {"roi_zyx": list(roi.shape[2:]), "windows": n_windows, "window_zyx": list(window),
            "sw_windows": spec.sw_windows, "gflop_per_window": window_flops / 1e9, "card_runtime": card_name,
            "runtimes": rows}


def _count_windows(shape, roi, overlap) -> int:
    """Windows MONAI's sliding_window_inference visits (same scan interval rule)."""
    n = 1
    for size, r in zip(shape, roi):
        step = max(int(r * (1 - overlap)), 1)
        n *= 1 if size <= r else int(np.ceil((size - r) / step)) + 1
    return n


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="small phantom, finishes in seconds")
    parser.add_argument("--weights", type=Path, default=SHIPPED_WEIGHTS_DIR)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    geometry = SMOKE if args.smoke else FULL
    phantom = make_ct_phantom(0, **geometry)
    models = CTModels.load(args.weights, "demo")
    matmul_n = 512 if args.smoke else 2048
    native = bf16_fast("cpu")
    # an emulated bf16 matmul ran at 0.3 GFLOP/s (minutes at n = 2048) and says nothing the fp32 path uses
    ref = {"matmul_fp32_gflops": matmul_gflops(matmul_n, torch.float32),
           "matmul_bf16_gflops": matmul_gflops(matmul_n, torch.bfloat16) if native else None}
    cold = analyze_ct(phantom.volume, models)  # first call: oneDNN kernel creation for each shape
    findings = analyze_ct(phantom.volume, models)
    plain = analyze_ct(phantom.volume, models, PipelineConfig(tta=False))
    result = {"phantom": {k: list(v) for k, v in geometry.items()}, "threads": args.threads, **ref,
              "bf16_native": native,
              "first_call_total_s": sum(cold.timings_s.values()),
              "stages_s": findings.timings_s, "total_s": sum(findings.timings_s.values()),
              "tta_passes": 1 + len(models.segmentation.card.input_spec.tta_flips),
              "segmentation_s_without_tta": plain.timings_s["segmentation"],
              "total_s_without_tta": sum(plain.timings_s.values()),
              "nodules_found": len(findings.nodules), "unet": bench_unet(models, phantom.volume, args.smoke)}
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kB
    _print(result)
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


def _print(r: dict) -> None:
    print(f"phantom {r['phantom']['shape_zyx']} at {r['phantom']['spacing_mm']} mm, {r['threads']} threads")
    if r["bf16_native"]:
        print(f"reference matmul: fp32 {r['matmul_fp32_gflops']:.1f} GFLOP/s, bf16 {r['matmul_bf16_gflops']:.1f} GFLOP/s")
    else:
        print(f"reference matmul: fp32 {r['matmul_fp32_gflops']:.1f} GFLOP/s")
        print("bf16 not timed: this CPU has no AVX512-BF16/AMX kernels, so the pipeline runs fp32")
    print("pipeline stages (warm):")
    for stage, s in r["stages_s"].items():
        print(f"  {stage:<14} {s:8.3f} s")
    print(f"  {'total':<14} {r['total_s']:8.3f} s   ({r['nodules_found']} nodules; second call — "
          f"the first, with kernel creation, took {r['first_call_total_s']:.3f} s)")
    print(f"  segmentation runs {r['tta_passes']} U-Net passes (the plain one and the card's mirrored ones); "
          f"the plain pass only (PipelineConfig(tta=False)): segmentation "
          f"{r['segmentation_s_without_tta']:.3f} s, total {r['total_s_without_tta']:.3f} s")
    print(f"  peak resident memory of the benchmark process: {r['peak_rss_mb']:.0f} MB")
    u = r["unet"]
    print(f"one U-Net pass over lung box {u['roi_zyx']}: {u['windows']} {u['sw_windows']} windows "
          f"{'×'.join(map(str, u['window_zyx']))} × {u['gflop_per_window']:.2f} GFLOP (* the pipeline's runtime)")
    base = u["runtimes"]["eager fp32"]["seconds"]
    for name, row in u["runtimes"].items():
        mark = "*" if name == u["card_runtime"] else " "
        print(f"{mark} {name:<44} {row['seconds']:7.3f} s  x{base / row['seconds']:5.2f} vs eager fp32  "
              f"{row['gflops_per_s']:7.1f} GFLOP/s = {row['gflops_per_s'] / r['matmul_fp32_gflops']:.2f}× fp32 matmul  "
              f"mask Dice vs fp32 {row['mask_dice_vs_fp32']:.4f}")


if __name__ == "__main__":
    raise SystemExit(main())
