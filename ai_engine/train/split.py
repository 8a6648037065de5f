"""Patient-level splits: every sample of one patient lands in the same partition."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def patient_split(patient_ids: Sequence[str], seed: int, fractions: tuple[float, float, float] = (0.7, 0.15, 0.15)
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sample indices of the train / validation / test partitions (70/15/15 of patients)."""
    patients = np.array(sorted(set(patient_ids)))
    np.random.default_rng(seed).shuffle(patients)
    n_train = int(round(fractions[0] * len(patients)))
    n_val = max(1, int(round(fractions[1] * len(patients))))
    groups = (patients[:n_train], patients[n_train:n_train + n_val], patients[n_train + n_val:])
    return tuple(_indices(patient_ids, g) for g in groups)  # type: ignore[return-value]


def patient_folds(patient_ids: Sequence[str], k: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """k (train, validation) index pairs with disjoint patients."""
    patients = np.array(sorted(set(patient_ids)))
    np.random.default_rng(seed).shuffle(patients)
    chunks = np.array_split(patients, k)
    return [(_indices(patient_ids, np.concatenate(chunks[:i] + chunks[i + 1:])), _indices(patient_ids, c))
            for i, c in enumerate(chunks)]


def _indices(patient_ids: Sequence[str], group: np.ndarray) -> np.ndarray:
    members = set(group.tolist())
    return np.array([i for i, p in enumerate(patient_ids) if p in members], dtype=int)
