"""What a benchmark case is (plain data a method's spec declares) and what preparing one gives.

A :class:`CaseSpec` travels as JSON to the memory probe subprocess; :class:`PreparedCase` is what
:func:`lpd_bench.bench.cases.prepare_case` (or a custom case's ``prepare``) returns. This module
imports nothing of the registry, so method specs can import it.
"""
from dataclasses import asdict, dataclass, field
from typing import Callable, Dict, Optional

import numpy as np
import torch

from lpd_bench.data.bcss_meta import NUM_TISSUE_CLASSES

#: Unit-of-work kinds. CUSTOM: the case's ``prepare`` ('module:function') builds it, for work
#: that only one method has (e.g. a stage before training).
BACKBONE, TRAIN_STEP, INFERENCE, CUSTOM = 'backbone', 'train_step', 'inference', 'custom'


@dataclass
class CaseSpec:
    """One benchmark case.

    ``method`` is a registered method (:mod:`lpd_bench.methods`): the case runs with its config of
    the preset; ``train_iter`` is written to MessageHub's 'iter' before every call (None: leave
    it; 'warmup' would be the config's ``loss_warmup_iters``, resolved when preparing);
    ``encoder_weight_grads`` turns
    ``requires_grad`` back on for the frozen encoder's weights (after the optimizer is built, so
    they get gradients but are never updated: the cost of a straightforward implementation);
    ``prepare`` ('module:function', kind CUSTOM) is called as ``function(cfg, batch, size,
    device)`` and returns a :class:`PreparedCase`;
    ``amp_dtype`` ('float16' / 'bfloat16'; None: fp32 as before) runs the case under AMP: a
    training step with the config's optimizer in AmpOptimWrapper of that dtype (on CPU, where
    mmengine's wrapper asserts CUDA, an OptimWrapper whose forward runs under ``torch.autocast``),
    the bare backbone's forward under ``torch.autocast``; ``on_request`` cases run only when named
    (``lpd-bench bench --cases NAME``), not in a preset's default set.
    """
    name: str
    kind: str
    method: str
    cfg_options: Dict = field(default_factory=dict)
    train_iter: Optional[object] = None
    encoder_weight_grads: bool = False
    description: str = ''
    prepare: Optional[str] = None
    amp_dtype: Optional[str] = None
    on_request: bool = False

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class PreparedCase:
    """A case ready to run: ``run()`` does one unit of work on ``items`` images."""
    run: Callable[[], object]
    items: int
    cleanup: Callable[[], None] = lambda: None


def random_batch(batch: int, size: int, num_classes: int = NUM_TISSUE_CLASSES, seed: int = 0,
                 with_masks: bool = False) -> dict:
    """A model input dict like a dataloader's: uint8 BGR images and data samples with ``img_label``.

    Labels hold 1..3 classes; ``with_masks`` adds a random ground-truth mask (values 0..4).
    """
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    rng = np.random.default_rng(seed)
    inputs, samples = [], []
    for _ in range(batch):
        label = np.zeros(num_classes, dtype=np.int64)
        label[rng.choice(num_classes, size=rng.integers(1, min(3, num_classes) + 1), replace=False)] = 1
        inputs.append(torch.from_numpy(rng.integers(0, 256, (3, size, size), dtype=np.uint8)))
        sample = SegDataSample(metainfo=dict(img_label=label.tolist(), img_shape=(size, size),
                                             ori_shape=(size, size), pad_shape=(size, size)))
        if with_masks:
            mask = torch.from_numpy(rng.integers(0, num_classes + 1, (1, size, size)))
            sample.gt_sem_seg = PixelData(data=mask)
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)
