"""A synthetic series written by the modality and read back gives the same volume and geometry."""

from pathlib import Path

import numpy as np

from dicom_node.load import load_ct
from dicom_node.modality import FictitiousPatient, SeriesUIDs, ct_slices, write_ct_series
from tests.helpers import simple_ct_volume


def test_round_trip_volume_and_geometry(tmp_path: Path) -> None:
    volume = simple_ct_volume(shape=(12, 32, 40), spacing_mm=(0.7, 0.8, 1.5))
    paths = write_ct_series(ct_slices(volume, FictitiousPatient(), SeriesUIDs.from_seed(3)), tmp_path)
    slices, loaded = load_ct(list(reversed(paths)))  # order on disk must not matter
    assert [int(s.InstanceNumber) for s in slices] == list(range(1, 13))
    assert np.allclose(loaded.hu, np.rint(volume.hu), atol=0.5)
    assert np.allclose(loaded.spacing_mm, volume.spacing_mm, atol=1e-4)
    assert np.allclose(loaded.origin_mm, volume.origin_mm, atol=1e-3)
    assert np.allclose(loaded.index_to_mm((5, 3, 7)), volume.index_to_mm((5, 3, 7)), atol=1e-3)
