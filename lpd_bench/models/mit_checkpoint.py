"""Load official SegFormer ImageNet checkpoints (``mit_b1.pth``) into mmseg's MixVisionTransformer.

The official files use the NVlabs key names (``patch_embed1.proj.weight``, ``block1.0.attn.q``,
``attn.kv``, ``norm1``); mmseg's backbone expects ``layers.0.0.projection.weight``,
``attn.attn.in_proj_weight`` etc. Use the weight initializer in a backbone config, as any
MMSegmentation ``init_cfg``::

    backbone=dict(type='MixVisionTransformer', ...,
                  init_cfg=dict(type='PretrainedMiT', checkpoint='pretrain/mit_b1.pth'))

It reads the file with ``torch.load(weights_only=True)``, accepts official or already converted
(mmseg) key names, converts with mmseg's own ``tools/model_converters/mit2mmseg.py``, and fails
with the lists of missing and unexpected keys when the checkpoint does not fit the backbone
(e.g. mit_b2 weights for a MiT-B1). The type is registered in ``mmseg.registry.WEIGHT_INITIALIZERS``, so it resolves
under the runner's ``default_scope='mmseg'`` (or write ``type='mmseg.PretrainedMiT'``).
"""
import importlib.util
from collections import OrderedDict
from pathlib import Path
from typing import Dict

import mmseg
import torch
from mmengine.logging import print_log
from mmengine.model.weight_init import update_init_info
from torch import Tensor, nn

from mmseg.registry import WEIGHT_INITIALIZERS

CONVERTER = Path(mmseg.__file__).parent / '.mim' / 'tools' / 'model_converters' / 'mit2mmseg.py'


def _mmseg_convert_mit():
    """``convert_mit`` from mmseg's installed model converter script."""
    if not CONVERTER.is_file():
        raise ImportError(f'mmseg MiT converter not found at {CONVERTER} '
                          '(mmsegmentation installed without its .mim tools)')
    spec = importlib.util.spec_from_file_location('mmseg_mit2mmseg', CONVERTER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.convert_mit


def is_official_mit(state_dict: Dict[str, Tensor]) -> bool:
    """Whether the keys are NVlabs SegFormer names (``patch_embed1.*``, ``block1.*``)."""
    return any(key.startswith('patch_embed1.') for key in state_dict)


def load_mit_state_dict(path) -> 'OrderedDict[str, Tensor]':
    """Read a MiT checkpoint (official or mmseg keys) and return mmseg backbone keys."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'MiT checkpoint not found: {path}')
    checkpoint = torch.load(path, map_location='cpu', weights_only=True)
    for key in ('state_dict', 'model'):
        if isinstance(checkpoint, dict) and key in checkpoint:
            checkpoint = checkpoint[key]
    if not isinstance(checkpoint, dict):
        raise ValueError(f'{path}: expected a state dict, got {type(checkpoint).__name__}')
    if is_official_mit(checkpoint):
        return _mmseg_convert_mit()(checkpoint)
    return OrderedDict(checkpoint)


def _listed(keys) -> str:
    return ', '.join(keys[:10]) + (f' ... ({len(keys)} in all)' if len(keys) > 10 else '')


def load_mit_checkpoint(module: nn.Module, path) -> None:
    """Load ``path`` into a MixVisionTransformer; any key or shape mismatch is an error.

    The ImageNet classifier (``head.*``) of official files is dropped by the conversion; any other
    extra key means another architecture (e.g. mit_b2 weights, which have more blocks, for a
    MiT-B1), so it is an error too, as are missing keys and shape mismatches.
    """
    state_dict = load_mit_state_dict(path)
    own = module.state_dict()
    name = type(module).__name__
    missing = [key for key in own if key not in state_dict]
    unexpected = [key for key in state_dict if key not in own]
    if missing or unexpected:
        raise ValueError(f'{path} does not fit {name}: missing keys [{_listed(missing)}]; '
                         f'unexpected keys [{_listed(unexpected)}]')
    wrong = [f'{key} {tuple(state_dict[key].shape)} vs {tuple(value.shape)}'
             for key, value in own.items() if state_dict[key].shape != value.shape]
    if wrong:
        raise ValueError(f'{path} does not fit {name}: shape mismatch (checkpoint vs model) '
                         f'{"; ".join(wrong[:10])}')
    module.load_state_dict(state_dict)


@WEIGHT_INITIALIZERS.register_module()
class PretrainedMiT:
    """``init_cfg`` type that loads an official (or converted) SegFormer MiT checkpoint."""

    def __init__(self, checkpoint: str):
        self.checkpoint = checkpoint

    def __call__(self, module: nn.Module) -> None:
        print_log(f'load MiT weights from: {self.checkpoint}', logger='current')
        load_mit_checkpoint(module, self.checkpoint)
        if hasattr(module, '_params_init_info'):
            update_init_info(module, init_info=f'PretrainedMiT: load from {self.checkpoint}')
