"""Fixtures of the privacy tests: PHI-laden studies (see ``phi.py``) and contexts."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from dicom_node.privacy.deidentify import DeidContext, DeidOptions
from dicom_node.privacy.pseudonym import Pseudonymizer
from tests.privacy.phi import SITE_KEY, PhiStudy, write_phi_study


@pytest.fixture(scope="session")
def phi_study(tmp_path_factory: pytest.TempPathFactory) -> PhiStudy:
    return PhiStudy(write_phi_study(tmp_path_factory.mktemp("phi_utf8")), "ISO_IR 192")


@pytest.fixture(scope="session")
def phi_study_latin1(tmp_path_factory: pytest.TempPathFactory) -> PhiStudy:
    return PhiStudy(write_phi_study(tmp_path_factory.mktemp("phi_latin1"), "ISO_IR 100"), "ISO_IR 100")


@pytest.fixture
def make_ctx() -> Callable[..., DeidContext]:
    def make(key: str = SITE_KEY, **options: bool) -> DeidContext:
        return DeidContext(Pseudonymizer(key), DeidOptions(**options))

    return make
