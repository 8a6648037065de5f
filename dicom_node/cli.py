"""`pulmonode` command line. Settings are built here, once, and passed down.

Heavy modules (torch, pynetdicom, FastAPI) are imported inside the commands that need them so
`pulmonode --help` and `pulmonode status` stay fast.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from pydantic import ValidationError

from dicom_node.config import Settings

Command = Callable[[argparse.Namespace, Settings], int]


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help()
        return 2
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    _quiet_noisy_loggers()
    try:
        settings = Settings.load(args.config, **_overrides(args))
    except (ValidationError, ValueError) as exc:
        print(f"pulmonode: configuration error: {exc}", file=sys.stderr)
        return 2
    try:
        return int(args.func(args, settings) or 0)
    except KeyboardInterrupt:
        return 130
    except CliError as exc:
        print(f"pulmonode: {exc}", file=sys.stderr)
        return 1


class CliError(Exception):
    """A user-facing failure: printed as one line, exit status 1."""


def _overrides(args: argparse.Namespace) -> dict[str, object]:
    overrides: dict[str, object] = {}
    if getattr(args, "demo_mode", False):
        overrides["demo_mode"] = True
    if args.data_dir is not None:
        overrides["data_dir"] = args.data_dir
    return overrides


def _quiet_noisy_loggers() -> None:
    for name in ("pynetdicom", "httpx", "uvicorn.access", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)


# -- commands ---------------------------------------------------------------------------------


def cmd_db_upgrade(args: argparse.Namespace, settings: Settings) -> int:
    from dicom_node.db.migrate import upgrade

    upgrade(settings.db_url)
    print(f"database at head: {_redact(settings.db_url)}")
    return 0


def cmd_serve(args: argparse.Namespace, settings: Settings) -> int:
    from dicom_node.service import serve

    return serve(settings, scp=True, workers=True, api=True, sender=True)


def cmd_scp(args: argparse.Namespace, settings: Settings) -> int:
    from dicom_node.db.migrate import upgrade
    from dicom_node.receive.scp import serve_forever

    upgrade(settings.db_url)
    serve_forever(settings)  # settings.scp_processes processes sharing the port
    return 0


def cmd_worker(args: argparse.Namespace, settings: Settings) -> int:
    from dicom_node.service import serve

    return serve(settings, scp=False, workers=True, api=False, sender=True)


def cmd_status(args: argparse.Namespace, settings: Settings) -> int:
    from dicom_node.db.session import make_engine, make_sessionmaker
    from dicom_node.jobs.status import format_summary, queue_summary

    engine = make_engine(settings.db_url)
    with make_sessionmaker(engine)() as session:
        print(format_summary(queue_summary(session)))
    engine.dispose()
    return 0


def cmd_deliveries_retry(args: argparse.Namespace, settings: Settings) -> int:
    from dicom_node.db.session import make_engine, make_sessionmaker
    from dicom_node.deliver.outbox import retry_dead

    engine = make_engine(settings.db_url)
    count = retry_dead(make_sessionmaker(engine), args.ids or None)
    engine.dispose()
    print(f"{count} dead-lettered deliveries queued again")
    return 0


def cmd_deidentify(args: argparse.Namespace, settings: Settings) -> int:
    from dicom_node.privacy.study import deidentify_files

    report = deidentify_files([Path(p) for p in args.inputs], Path(args.out), settings)
    print("\n".join(report.messages()))
    return 0 if report.ok else 1


def cmd_synth_ct(args: argparse.Namespace, settings: Settings) -> int:
    from dicom_node.synth import write_synthetic_ct

    out = write_synthetic_ct(
        Path(args.out), seed=args.seed, shape_zyx=tuple(args.shape), spacing_mm=tuple(args.spacing)
    )
    print(out.summary())
    return 0


def cmd_train(args: argparse.Namespace, settings: Settings) -> int:
    from dicom_node.training_cli import run_train

    return run_train(args, settings)


def cmd_evaluate(args: argparse.Namespace, settings: Settings) -> int:
    from dicom_node.training_cli import run_evaluate

    return run_evaluate(args, settings)


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from dicom_node.demo import run_demo

    return run_demo(args, settings)


# -- parser -----------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pulmonode", parents=[_common(None)], description=__doc__.splitlines()[0])
    # options repeated after the command must not reset what was given before it
    common = _common(argparse.SUPPRESS)
    sub = p.add_subparsers(metavar="COMMAND")

    def add(name: str, func: Command, help_: str, parent: argparse._SubParsersAction = sub) -> argparse.ArgumentParser:
        sp = parent.add_parser(name, parents=[common], help=help_, description=help_)
        sp.set_defaults(func=func)
        return sp

    demo = add("demo", cmd_demo, "end-to-end demo on embedded defaults (synthetic patient)")
    demo.set_defaults(demo_mode=True)
    demo.add_argument("--size", choices=["small", "full"], default="small",
                      help="small: a quick 160×160 CT; full: 512×512×300")
    demo.add_argument("--keep-running", action="store_true", help="leave Orthanc and the node up")
    add("serve", cmd_serve, "SCP + workers + delivery + API, one process tree")
    add("scp", cmd_scp, "the DICOM SCP only")
    add("worker", cmd_worker, "job workers and the delivery sender only")
    add("status", cmd_status, "the queue at a glance")
    db = sub.add_parser("db", help="database maintenance").add_subparsers(metavar="ACTION")
    add("upgrade", cmd_db_upgrade, "apply Alembic migrations", db)
    deliveries = sub.add_parser("deliveries", help="outbound deliveries").add_subparsers(metavar="ACTION")
    retry = add("retry", cmd_deliveries_retry, "re-queue dead-lettered deliveries", deliveries)
    retry.add_argument("ids", nargs="*", type=int, help="delivery ids (default: all dead)")
    deid = add("deidentify", cmd_deidentify, "PS3.15 de-identification of files or folders")
    deid.add_argument("inputs", nargs="+")
    deid.add_argument("--out", required=True)
    synth = sub.add_parser("synth", help="synthetic data").add_subparsers(metavar="KIND")
    ct = add("ct", cmd_synth_ct, "write a synthetic chest CT series (fictitious patient)", synth)
    ct.set_defaults(demo_mode=True)
    ct.add_argument("--out", required=True)
    ct.add_argument("--seed", type=int, default=0)
    ct.add_argument("--shape", type=int, nargs=3, default=[96, 160, 160], metavar=("Z", "Y", "X"))
    ct.add_argument("--spacing", type=float, nargs=3, default=[2.0, 2.0, 2.5], metavar=("X", "Y", "Z"))
    train = add("train", cmd_train, "train a model (segmentation, malignancy, subtype, demo-weights)")
    train.set_defaults(demo_mode=True)
    train.add_argument("task", choices=["segmentation", "malignancy", "subtype", "demo-weights"])
    train.add_argument("--data", default="synthetic", help="synthetic | luna16:PATH | kaggle-ct:PATH")
    train.add_argument("--out", type=Path, default=None)
    train.add_argument("--profile", choices=["demo", "paper"], default="demo")
    train.add_argument("--epochs", type=int, default=None)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--folds", type=int, default=0, help="k-fold cross-validation (0: one split)")
    train.add_argument("--device", default="cpu")
    ev = add("evaluate", cmd_evaluate, "evaluate the models; writes JSON + Markdown with plots")
    ev.set_defaults(demo_mode=True)
    ev.add_argument("--data", default="synthetic", help="synthetic | luna16:PATH")
    ev.add_argument("--out", type=Path, default=Path("evaluation"))
    ev.add_argument("--weights", type=Path, default=None)
    ev.add_argument("--scans", type=int, default=None,
                    help="synthetic: held-out phantoms for detection/Dice (10); luna16: at most this many scans (all)")
    ev.add_argument("--patches", type=int, default=200, help="held-out nodule patches per classifier")
    ev.add_argument("--seed", type=int, default=10_000)
    ev.add_argument("--device", default=None, help="cpu | cuda (default: the config's device)")
    ev.add_argument("--plain-pass", action="store_true",
                    help="run only the U-Net's plain pass, not the card's mirrored ones (as unet_mirrored_passes = false)")
    return p


def _common(default: object) -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", type=Path, default=default, help="TOML configuration file")
    common.add_argument("--data-dir", type=Path, default=default, help="overrides data_dir")
    common.add_argument("-v", "--verbose", action="store_true", default=False if default is None else default)
    return common


def _redact(url: str) -> str:
    """Never print a database password."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        return f"{scheme}://{creds.split(':')[0]}:***@{host}" if ":" in creds else url
    return url


if __name__ == "__main__":
    sys.exit(main())
