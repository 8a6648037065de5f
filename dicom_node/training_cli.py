"""`pulmonode train …` and `pulmonode evaluate …`: thin wiring from the CLI to ai_engine."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

from dicom_node.config import Settings

SHIPPED = Path(__file__).resolve().parent.parent / "ai_engine" / "weights"


def run_train(args: argparse.Namespace, settings: Settings) -> int:
    from ai_engine.datasets import DatasetError
    from ai_engine.train import (
        TrainConfig,
        TrainError,
        build_demo_weights,
        train_malignancy,
        train_segmentation,
        train_subtype,
    )

    out = args.out or Path("weights")
    if args.task == "demo-weights":
        result = build_demo_weights(args.out or SHIPPED, seed=args.seed, device=args.device)
        print(json.dumps({"weights": str(result.out_dir), "seconds": result.seconds,
                          "pipeline": _jsonable(result.pipeline_metrics)}, indent=2))
        return 0
    config = TrainConfig(profile=args.profile, seed=args.seed, device=args.device, folds=max(args.folds, 1))
    if args.epochs:
        config = replace(config, epochs=args.epochs)
    train = {"segmentation": train_segmentation, "malignancy": train_malignancy, "subtype": train_subtype}[args.task]
    try:
        result = train(args.data, out, config)
    except (TrainError, DatasetError) as exc:  # bad data or a source that cannot train this task: one line
        print(f"pulmonode train {args.task}: {exc}", file=sys.stderr)
        return 1
    for r in result if isinstance(result, tuple | list) else (result,):
        print(f"{r.card.name}: {r.card.metrics} → {r.weights_path} (model card beside it; data {args.data})")
    return 0


def run_evaluate(args: argparse.Namespace, settings: Settings) -> int:
    from ai_engine.datasets import DatasetError
    from ai_engine.evaluate.luna16 import Luna16EvalConfig, evaluate_luna16
    from ai_engine.evaluate.synthetic import SyntheticEvalConfig, evaluate_synthetic
    from ai_engine.models import ModelError
    from ai_engine.pipelines.models import CTModels
    from ai_engine.train import DataSourceError, parse_data

    try:
        source = parse_data(args.data)
    except DataSourceError as exc:
        print(f"pulmonode evaluate: {exc}", file=sys.stderr)
        return 2
    if source.kind == "kaggle-ct":
        print(f"pulmonode evaluate: --data {args.data!r}: the Kaggle set's slices are not CT volumes for the "
              "nodule pipeline; `pulmonode train subtype --data kaggle-ct:PATH` scores a subtype network on its "
              "test split (the card holds the metrics)", file=sys.stderr)
        return 2
    try:
        models = CTModels.load(args.weights or settings.weights_dir or SHIPPED, settings.model_profile)
    except ModelError as exc:  # a missing, tampered or unsuitable model: one line, not a traceback
        print(f"pulmonode evaluate: {exc}", file=sys.stderr)
        return 1
    device, tta = args.device or settings.device, settings.unet_mirrored_passes and not args.plain_pass
    if source.kind == "luna16":
        try:
            luna = Luna16EvalConfig(max_scans=args.scans, device=device, tta=tta)
            _, json_path, md_path = evaluate_luna16(models, source.path, args.out, luna)
        except DatasetError as exc:
            print(f"pulmonode evaluate: {exc}", file=sys.stderr)
            return 1
    else:
        config = SyntheticEvalConfig(n_scans=args.scans or 10, n_patches=args.patches, seed=args.seed, device=device,
                                     tta=tta)
        _, json_path, md_path = evaluate_synthetic(models, args.out, config)
    print(md_path.read_text(encoding="utf-8"))
    print(f"written: {json_path} and {md_path}")
    return 0


def _jsonable(value: object) -> object:
    return json.loads(json.dumps(value, default=str))
