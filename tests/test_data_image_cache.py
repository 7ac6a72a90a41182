"""CachedLoadImageFromFile: the same arrays as LoadImageFromFile, decoded once, copies handed
out, the byte cap, and the CPU preset's train pipelines use it (the paper configs do not)."""
from pathlib import Path

import numpy as np
import pytest
from mmcv.transforms import LoadImageFromFile
from PIL import Image

from lpd_bench.data.image_cache import CachedLoadImageFromFile

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def images(tmp_path):
    rng = np.random.default_rng(0)
    paths = []
    for i in range(3):
        path = tmp_path / f'{i}.png'
        Image.fromarray(rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)).save(path)
        paths.append(str(path))
    return paths


def test_cached_load_gives_the_plain_loads_arrays_and_decodes_once(images, monkeypatch):
    plain, cached = LoadImageFromFile(), CachedLoadImageFromFile()
    decodes = []
    original = LoadImageFromFile.transform
    monkeypatch.setattr(LoadImageFromFile, 'transform',
                        lambda self, results: decodes.append(1) or original(self, results))
    for _ in range(3):
        for path in images:
            expected = original(plain, {'img_path': path})
            got = cached({'img_path': path})
            assert np.array_equal(got['img'], expected['img'])
            assert got['img_shape'] == got['ori_shape'] == (20, 30)
            got['img'][:] = 0  # a later transform writing into its image...
    assert len(decodes) == 3  # one decode per file
    again = cached({'img_path': images[0]})  # ... leaves the cache intact
    assert np.array_equal(again['img'], original(plain, {'img_path': images[0]})['img'])
    assert cached.cached_bytes == 3 * 20 * 30 * 3


def test_cache_holds_at_most_its_byte_cap(images):
    cached = CachedLoadImageFromFile(max_cache_bytes=2 * 20 * 30 * 3)
    for path in images:
        cached({'img_path': path})
    assert len(cached.cache) == 2 and cached.cached_bytes == 2 * 20 * 30 * 3
    assert np.array_equal(cached({'img_path': images[2]})['img'],
                          LoadImageFromFile()({'img_path': images[2]})['img'])
    with pytest.raises(ValueError, match='max_cache_bytes must be >= 0'):
        CachedLoadImageFromFile(max_cache_bytes=-1)


def test_cpu_preset_training_uses_the_cache_and_the_paper_preset_does_not():
    from lpd_bench.apis import load_config
    for name, loader in (('lpd_synth_cpu.py', 'CachedLoadImageFromFile'),
                         ('stage2_synth_cpu.py', 'CachedLoadImageFromFile'),
                         ('lpd_bcss.py', 'LoadImageFromFile')):
        cfg = load_config(str(REPO / 'configs' / name))
        assert cfg.train_dataloader.dataset.pipeline[0]['type'] == loader, name
        assert cfg.test_dataloader.dataset.pipeline[0]['type'] == 'LoadImageFromFile', name
