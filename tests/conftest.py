"""Shared set-up and fixtures of the test suite (shared plain helpers: helpers.py)."""
import pytest

import baselines  # noqa: F401  (registers the baselines' components, e.g. CAM's StageClassVectors)
from helpers import make_tiny_dataset, make_tools


@pytest.fixture(scope='session')
def tiny_data(tmp_path_factory):
    """A handful of 64 px synthetic patches in the BCSS-WSSS layout (read-only, shared)."""
    return make_tiny_dataset(tmp_path_factory.mktemp('data') / 'BCSS-WSSS')


@pytest.fixture
def fake_tools(tmp_path):
    """Fake train/test/bank/snapshot tools for the runner (helpers.make_tools) in ``tmp_path``."""
    return make_tools(tmp_path)
