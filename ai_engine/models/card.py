"""Model cards: a JSON file beside each checkpoint saying what the weights are and how they were made.

Layout in a weights directory: ``<name>-<profile>.pt`` (a torch state_dict) and
``<name>-<profile>.json`` (the card). The card records the weights' sha256; ``load_model`` refuses
weights that do not match it.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ai_engine.findings import ModelInfo
from ai_engine.models import registry
from ai_engine.models.errors import ModelCardError, WeightsIntegrityError
from ai_engine.models.spec import InputSpec


@dataclass(frozen=True)
class ModelCard:
    name: str
    architecture: str
    profile: str
    data_source: str  # "synthetic" or e.g. "luna16", "kaggle-ct"
    input_spec: InputSpec
    training: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)  # computed on held-out data, never typed in
    weights_file: str = ""
    sha256: str = ""
    weights_dtype: str = "float32"
    parameters: int = 0
    code_version: str = ""
    created_at: str = ""

    @property
    def synthetic(self) -> bool:
        return self.data_source == "synthetic"

    def model_info(self) -> ModelInfo:
        return ModelInfo(name=self.name, version=self.code_version, sha256=self.sha256,
                         profile=self.profile, trained_on=self.data_source, synthetic=self.synthetic)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "input_spec": self.input_spec.to_json()}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "ModelCard":
        return cls(**{**data, "input_spec": InputSpec.from_json(data["input_spec"])})


def stem(name: str, profile: str) -> str:
    return f"{name}-{profile}"


def card_path(weights_dir: Path, name: str, profile: str) -> Path:
    return Path(weights_dir) / f"{stem(name, profile)}.json"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def code_version() -> str:
    """Package version, plus the git commit when running from a checkout."""
    version = metadata.version("pulmonode")
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).parent, timeout=5, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return version
    return f"{version}+g{commit}" if commit else version


def save_checkpoint(module: nn.Module, card: ModelCard, out_dir: Path, half: bool = False) -> ModelCard:
    """Write the weights (fp16 when ``half``) and the card; return the card as written."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    weights = out_dir / f"{stem(card.name, card.profile)}.pt"
    state = {k: (v.half() if half and v.is_floating_point() else v).detach().cpu().contiguous()
             for k, v in module.state_dict().items()}
    torch.save(state, weights)
    card = replace(card, weights_file=weights.name, sha256=sha256_file(weights),
                   weights_dtype="float16" if half else "float32",
                   parameters=sum(p.numel() for p in module.parameters()),
                   code_version=card.code_version or code_version(),
                   created_at=card.created_at or datetime.now(timezone.utc).isoformat(timespec="seconds"))
    write_card(card, out_dir)
    return card


def write_card(card: ModelCard, out_dir: Path) -> Path:
    path = card_path(out_dir, card.name, card.profile)
    path.write_text(json.dumps(card.to_json(), indent=2, sort_keys=True) + "\n")
    return path


def read_card(weights_dir: Path, name: str, profile: str) -> ModelCard:
    path = card_path(weights_dir, name, profile)
    try:
        card = ModelCard.from_json(json.loads(path.read_text()))
    except FileNotFoundError:
        raise ModelCardError(f"no model card for {name!r} ({profile}) at {path}") from None
    except (json.JSONDecodeError, TypeError, KeyError) as exc:
        raise ModelCardError(f"unreadable model card {path}: {exc}") from None
    if (card.name, card.profile) != (name, profile):
        raise ModelCardError(f"{path} describes {card.name!r} ({card.profile}), not {name!r} ({profile})")
    return card


def verify_weights(weights_dir: Path, card: ModelCard) -> Path:
    """The weights path, after checking its sha256 against the card."""
    path = Path(weights_dir) / card.weights_file
    if not path.is_file():
        raise WeightsIntegrityError(f"weights file {path} named by the {card.name} card is missing")
    actual = sha256_file(path)
    if actual != card.sha256:
        raise WeightsIntegrityError(
            f"weights file {path} has sha256 {actual}, but its model card records {card.sha256}; "
            "refusing to load weights that are not the ones the card describes")
    return path


def load_model(name: str, weights_dir: Path, profile: str = "demo") -> tuple[nn.Module, ModelCard]:
    """Build the named model, load its verified weights (as fp32) and return it in eval mode."""
    card = read_card(weights_dir, name, profile)
    path = verify_weights(weights_dir, card)
    module = registry.build(name, profile)
    state = torch.load(path, map_location="cpu", weights_only=True)
    state = {k: (v.float() if v.is_floating_point() else v) for k, v in state.items()}
    try:
        module.load_state_dict(state)
    except RuntimeError as exc:  # the registry's architecture changed since these weights were trained
        raise ModelCardError(f"weights {path} do not fit the current {name!r} ({profile}) architecture: "
                             f"{str(exc).splitlines()[0]}") from None
    return module.eval(), card
