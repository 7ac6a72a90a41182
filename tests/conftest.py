"""Shared set-up and fixtures of the test suite (shared plain helpers: helpers.py)."""
import pytest

import baselines  # noqa: F401  (registers the baselines' components, e.g. CAM's StageClassVectors)
from helpers import cheap_backbone_pretraining, make_tiny_dataset, make_tools


@pytest.fixture(scope='session', autouse=True)
def cheap_backbone_init(tmp_path_factory):
    """The CPU preset's MiT starts from a backbone pretrained on the train split
    (``SyntheticPretrainedBackbone``, DEFAULTS['iters'] iterations): in this process every such
    pretraining takes 2 iterations unless a test gives ``iters``, cached in a session folder
    (helpers.cheap_backbone_pretraining). Tool subprocesses get ``backbone_init=scratch`` or a
    tiny ``pretrain`` through helpers.TINY_OPTIONS / TINY_BACKBONE_PRETRAIN."""
    with pytest.MonkeyPatch.context() as patch:
        cheap_backbone_pretraining(patch, tmp_path_factory.mktemp('backbones'))
        yield


@pytest.fixture(scope='session')
def tiny_data(tmp_path_factory):
    """A handful of 64 px synthetic patches in the BCSS-WSSS layout (read-only, shared)."""
    return make_tiny_dataset(tmp_path_factory.mktemp('data') / 'BCSS-WSSS')


@pytest.fixture
def fake_tools(tmp_path):
    """Fake train/test/bank/snapshot tools for the runner (helpers.make_tools) in ``tmp_path``."""
    return make_tools(tmp_path)
