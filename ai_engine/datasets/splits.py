"""Patient-level splits: every item of a patient lands in the same part (no leakage)."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

T = TypeVar("T")


@dataclass(frozen=True)
class PatientSplit:
    train: tuple[Hashable, ...]
    val: tuple[Hashable, ...]
    test: tuple[Hashable, ...]


@dataclass(frozen=True)
class Fold:
    index: int
    train: tuple[Hashable, ...]
    test: tuple[Hashable, ...]


def split_patients(
    patient_ids: Iterable[Hashable],
    fractions: tuple[float, float, float] = (0.70, 0.15, 0.15),
    seed: int = 0,
) -> PatientSplit:
    """Shuffle the unique patients with ``seed`` and cut them train/val/test by ``fractions``."""
    if len(fractions) != 3 or min(fractions) < 0 or not np.isclose(sum(fractions), 1.0):
        raise ValueError(f"fractions must be three non-negative numbers summing to 1, got {fractions}")
    ids = _shuffled(patient_ids, seed)
    n_train = int(round(fractions[0] * len(ids)))
    n_val = int(round(fractions[1] * len(ids)))
    return PatientSplit(ids[:n_train], ids[n_train:n_train + n_val], ids[n_train + n_val:])


def k_fold(patient_ids: Iterable[Hashable], k: int = 5, seed: int = 0) -> tuple[Fold, ...]:
    """``k`` folds of unique patients; each patient is in exactly one test part."""
    ids = _shuffled(patient_ids, seed)
    if not 2 <= k <= len(ids):
        raise ValueError(f"k must be between 2 and the number of patients ({len(ids)}), got {k}")
    parts = np.array_split(np.arange(len(ids)), k)
    return tuple(
        Fold(i, tuple(ids[j] for p in parts if p is not part for j in p), tuple(ids[j] for j in part))
        for i, part in enumerate(parts)
    )


def select(items: Sequence[T], patient_of: Callable[[T], Hashable], patients: Iterable[Hashable]) -> list[T]:
    """The items whose patient is in ``patients`` (keeps the items' order)."""
    wanted = set(patients)
    return [item for item in items if patient_of(item) in wanted]


def _shuffled(patient_ids: Iterable[Hashable], seed: int) -> tuple[Hashable, ...]:
    unique = sorted(set(patient_ids), key=str)  # sort first: independent of input order
    order = np.random.default_rng(seed).permutation(len(unique))
    return tuple(unique[i] for i in order)
