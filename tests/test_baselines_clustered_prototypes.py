"""PBIP stage B: ClusteredPrototypes loads a bank, checks its shape and keeps it frozen."""
import pytest
import torch

from baselines.pbip import ClusteredPrototypes, PrototypeBankError
from baselines.pbip.prototype_bank import random_bank, save_prototype_bank
from mmseg.registry import MODELS


def write_bank(path, num_classes=4, k=3, dim=512):
    bank = random_bank(num_classes, k, dim)
    save_prototype_bank(dict(bank, images={'TUM': ['a.png']}, encoder={'type': 'X'},
                             wall_time_s=1.0, images_per_s=1.0, peak_rss_mb=1.0,
                             peak_cuda_mb=None), str(path))
    return bank['prototypes']


def test_loads_bank_as_frozen_buffer(tmp_path):
    expected = write_bank(tmp_path / 'bank.pth', k=2, dim=16)
    source = MODELS.build(dict(type='ClusteredPrototypes', bank_path=str(tmp_path / 'bank.pth'),
                               num_per_class=2, dim=16, num_classes=4,
                               stage_channels=[8, 16, 32, 64]))
    assert isinstance(source, ClusteredPrototypes) and source.projected
    assert source.num_prototypes == 8
    torch.testing.assert_close(source(), expected)
    assert list(source.parameters()) == []
    assert not source().requires_grad
    assert 'prototypes' in source.state_dict()


def test_wrong_shape_is_refused_with_file_and_shapes(tmp_path):
    path = str(tmp_path / 'bank.pth')
    write_bank(path, k=3, dim=16)
    with pytest.raises(PrototypeBankError) as err:
        ClusteredPrototypes(num_classes=4, bank_path=path, num_per_class=5, dim=16)
    message = str(err.value)
    assert path in message and '(12, 16)' in message and '(20, 16)' in message
    with pytest.raises(PrototypeBankError, match=r'\(12, 512\)'):
        ClusteredPrototypes(num_classes=4, bank_path=path, num_per_class=3, dim=512)


def test_missing_bank_says_how_to_build_it(tmp_path):
    path = str(tmp_path / 'nope.pth')
    with pytest.raises(FileNotFoundError, match=r'python -m baselines\.pbip\.build_bank CONFIG --out '):
        ClusteredPrototypes(num_classes=4, bank_path=path)


def test_not_a_bank(tmp_path):
    path = str(tmp_path / 'other.pth')
    torch.save({'state_dict': {}}, path)
    with pytest.raises(PrototypeBankError, match='not a prototype bank'):
        ClusteredPrototypes(num_classes=4, bank_path=path)


def test_propagate_bank_path_only_into_clustered_prototypes():
    from mmengine.config import Config

    from baselines.pbip import propagate_bank_path
    cfg = Config(dict(bank_path='new.pth', model=dict(decode_head=dict(
        prototypes=dict(type='ClusteredPrototypes', bank_path='old.pth')))))
    propagate_bank_path(cfg)
    assert cfg.model.decode_head.prototypes.bank_path == 'new.pth'
    cfg = Config(dict(bank_path='new.pth', model=dict(decode_head=dict(
        prototypes=dict(type='LearnablePrototypes')))))
    propagate_bank_path(cfg)
    assert 'bank_path' not in cfg.model.decode_head.prototypes
