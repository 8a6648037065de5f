"""The `pulmonode` command line, run as a user runs it (a subprocess)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pydicom

SHIPPED = Path(__file__).resolve().parent.parent / "ai_engine" / "weights"


def run(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("PULMONODE_")}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "dicom_node.cli", *args], capture_output=True, text=True,
                          env=full_env, cwd=cwd, timeout=300)


def test_default_site_key_refused_outside_demo_mode(tmp_path: Path) -> None:
    result = run("--data-dir", str(tmp_path), "status")
    assert result.returncode == 2
    assert "site_key is the public demo key" in result.stderr


def test_config_file_and_env_precedence(tmp_path: Path) -> None:
    config = tmp_path / "node.toml"
    config.write_text('site_key = "a-very-secret-site-key-1234"\nae_title = "FROMFILE"\n')
    result = run("--config", str(config), "--data-dir", str(tmp_path / "d"), "db", "upgrade")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "d" / "pulmonode.db").exists()
    broken = tmp_path / "broken.toml"
    broken.write_text("ae_title = [unterminated\n")
    bad = run("--config", str(broken), "status")
    assert bad.returncode == 2 and "broken.toml" in bad.stderr


def test_synth_then_deidentify(tmp_path: Path) -> None:
    out = tmp_path / "ct"
    synth = run("synth", "ct", "--out", str(out), "--seed", "4", "--shape", "8", "48", "48",
                "--spacing", "6", "6", "5")
    assert synth.returncode == 0, synth.stderr
    files = sorted(out.glob("*.dcm"))
    assert len(files) == 8 and (out / "truth.json").exists()
    original = pydicom.dcmread(files[0])
    (out / "notes.txt").write_text("not DICOM")
    deid = run("deidentify", str(out), "--out", str(tmp_path / "deid"),
               env={"PULMONODE_SITE_KEY": "a-very-secret-site-key-1234"})
    assert "notes.txt" in deid.stdout + deid.stderr  # the skipped file is named
    written = sorted((tmp_path / "deid").rglob("*.dcm"))
    assert len(written) == 8
    blob = b"".join(p.read_bytes() for p in written)
    for phi in (str(original.PatientName), original.PatientID, original.AccessionNumber, original.StudyInstanceUID):
        assert phi.encode() not in blob


def test_status_on_fresh_database(tmp_path: Path) -> None:
    env = {"PULMONODE_SITE_KEY": "a-very-secret-site-key-1234"}
    assert run("--data-dir", str(tmp_path), "db", "upgrade", env=env).returncode == 0
    status = run("--data-dir", str(tmp_path), "status", env=env)
    assert status.returncode == 0, status.stderr
    assert "queued" in status.stdout.lower()


def test_evaluate_writes_report_with_synthetic_statement(tmp_path: Path) -> None:
    import json

    out = tmp_path / "eval"
    result = run("evaluate", "--scans", "1", "--patches", "6", "--out", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((out / "report.json").read_text())
    text = (out / "report.md").read_text()
    assert "synthetic phantoms" in text and "CPM" in text and (out / "froc.png").exists()
    tasks = [c["task"] for c in report["classification"]]
    assert any("densenet121-3d" in t for t in tasks) and any("convnext-tiny-3d" in t for t in tasks)
    assert any("ensemble" in t for t in tasks) and any("subtype" in t for t in tasks)
    assert report["detection"]["bootstrap"]["n_samples"] == 1000  # LUNA16's bootstrap, on by default
    assert all(len(c["roc_auc_interval_95"]) == 2 for c in report["classification"] if "roc_auc" in c)
    point = report["detection"]["operating_point"]  # the findings, beside the FROC of every candidate
    assert point["true_positives"] <= report["detection"]["true_positives"]
    assert report["extra"]["fp_per_scan_at_operating_point"] == point["fp_per_scan"]
    by_kind = {k: v for k, v in report["extra"].items() if k.startswith("sensitivity[")}
    assert by_kind and all(0.0 <= v <= 1.0 for v in by_kind.values())
    refused = run("evaluate", "--data", "luna16:/nowhere", "--out", str(out))
    assert refused.returncode == 2 and "path '/nowhere' does not exist" in refused.stderr
    refused = run("evaluate", "--data", f"kaggle-ct:{tmp_path}", "--out", str(out))
    assert refused.returncode == 2 and "not CT volumes" in refused.stderr
    refused = run("evaluate", "--data", f"luna16:{tmp_path}", "--out", str(out))  # no subsetN folders
    assert refused.returncode == 1 and "no .mhd volumes" in refused.stderr and "Traceback" not in refused.stderr


def test_train_on_kaggle_chest_ct_folders(tmp_path: Path) -> None:
    from tests.helpers import write_kaggle_slices

    write_kaggle_slices(tmp_path / "kaggle", {"train/adenocarcinoma": 40, "train/large.cell.carcinoma": 120,
                                              "train/squamous.cell.carcinoma": 200, "train/normal": 250})
    data, out = f"kaggle-ct:{tmp_path / 'kaggle'}", tmp_path / "weights"
    trained = run("train", "subtype", "--data", data, "--out", str(out), "--epochs", "1")
    assert trained.returncode == 0, trained.stderr[-2000:]
    assert "efficientnet-b3" in trained.stdout and (out / "efficientnet-b3-demo.json").exists()
    refused = run("train", "malignancy", "--data", data, "--out", str(out))
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert f"pulmonode train malignancy: {data}: cannot train malignancy" in refused.stderr
    for other in SHIPPED.glob("*"):  # the shipped CT models beside the Kaggle-trained subtype net
        if not other.name.startswith("efficientnet-b3"):
            shutil.copy(other, out / other.name)
    refused = run("evaluate", "--weights", str(out), "--scans", "1", "--out", str(tmp_path / "eval"))
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert "'efficientnet-b3' card says it was trained on kaggle-ct data" in refused.stderr


def test_evaluate_on_a_luna16_tree(tmp_path: Path) -> None:
    import json

    from ai_engine.evaluate.results import unet_description
    from ai_engine.pipelines.models import SHIPPED_WEIGHTS_DIR, CTModels
    from ai_engine.synthetic import make_ct_phantom
    from tests.helpers import write_mhd

    (tmp_path / "luna" / "subset1").mkdir(parents=True)
    write_mhd(make_ct_phantom(5, (48, 128, 128), (1.25, 1.25, 2.0)).volume, tmp_path / "luna" / "subset1" / "1.2.3.4.mhd")
    (tmp_path / "luna" / "annotations.csv").write_text("seriesuid,coordX,coordY,coordZ,diameter_mm\n1.2.3.4,0,0,0,5\n")
    out = tmp_path / "eval"
    result = run("evaluate", "--data", f"luna16:{tmp_path / 'luna'}", "--out", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((out / "report.json").read_text())
    assert report["dataset"].startswith(f"LUNA16 at {tmp_path / 'luna'}: 1 of 1 scans")
    assert report["detection"]["n_scans"] == 1 and report["detection"]["n_nodules"] == 1
    assert "pulmonode CT pipeline on LUNA16" in result.stdout
    shipped = CTModels.load(SHIPPED_WEIGHTS_DIR, "demo").segmentation.card.input_spec
    assert report["dataset"].endswith(unet_description(shipped, tta=True))  # the card's passes by default

    plain = run("evaluate", "--data", f"luna16:{tmp_path / 'luna'}", "--out", str(out), "--plain-pass", "--device", "cpu")
    assert plain.returncode == 0, plain.stderr[-2000:]
    dataset = json.loads((out / "report.json").read_text())["dataset"]
    assert dataset.endswith(unet_description(shipped, tta=False)) and "U-Net: the plain pass only, " in dataset
