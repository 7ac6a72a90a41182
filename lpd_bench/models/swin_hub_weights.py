"""Swin checkpoints of the model hub (``transformers`` keys) -> mmseg ``SwinTransformer`` keys.

The refiner's ImageNet Swin-T is published as ``microsoft/swin-tiny-patch4-window7-224``
(``model.safetensors`` or ``pytorch_model.bin``): a ``transformers``
``SwinForImageClassification`` whose keys are ``swin.embeddings.*``, ``swin.encoder.layers.<i>.*``,
``swin.layernorm.*`` and ``classifier.*`` (a bare ``SwinModel`` has the same keys without
``swin.``). The mapping:

============================================  ==================================================
transformers (``swin.`` optional)             mmseg ``SwinTransformer``
============================================  ==================================================
embeddings.patch_embeddings.projection.*      patch_embed.projection.*
embeddings.norm.*                             patch_embed.norm.*
encoder.layers.i.blocks.j.layernorm_before.*  stages.i.blocks.j.norm1.*
... attention.self.{query,key,value}.*        ... attn.w_msa.qkv.* (q, k, v concatenated)
... attention.self.relative_position_bias_*   ... attn.w_msa.relative_position_bias_table
... attention.self.relative_position_index    ... attn.w_msa.relative_position_index (buffer)
... attention.output.dense.*                  ... attn.w_msa.proj.*
... layernorm_after.*                         ... norm2.*
... intermediate.dense.* / output.dense.*     ... ffn.layers.0.0.* / ffn.layers.1.*
encoder.layers.i.downsample.reduction.weight  stages.i.downsample.reduction.weight (reordered)
encoder.layers.i.downsample.norm.*            stages.i.downsample.norm.* (reordered)
layernorm.*                                   norm<last stage>.* (the out_indices output norm)
classifier.*                                  dropped (the ImageNet head)
============================================  ==================================================

Both libraries merge patches at the end of stage i (i < last). transformers concatenates the four
2 x 2 neighbours block-wise, [x(0,0), x(1,0), x(0,1), x(1,1)] (row, col) then channels; mmseg's
``nn.Unfold`` orders channels first, then (0,0), (0,1), (1,0), (1,1): the merge's LayerNorm and
reduction weights are permuted accordingly (as mmseg's ``tools/model_converters/swin2mmseg.py``
does for the original release). The ``transformers`` 5 module names (``attention.q_proj``,
``attention.relative_position_bias.relative_position_bias_table``, ``mlp.fc1``, ...) are accepted
too. ``relative_position_index`` is a persistent buffer in mmseg but absent from files written by
``transformers`` 5: it is computed from the window size, and where a file has one it must equal it.

The converted backbone reproduces ``SwinModel(...).pooler_output`` when it follows the original
Swin's rule for feature maps that fit in one window (see :mod:`lpd_bench.models.original_swin`).
"""
import re
from collections import OrderedDict
from pathlib import Path
from typing import Dict, Mapping, Optional, Union

import torch
from torch import Tensor

#: The hub model of the refiner's encoder in the paper setting.
HUB_MODEL = 'microsoft/swin-tiny-patch4-window7-224'

_BLOCK = re.compile(r'encoder\.layers\.(\d+)\.blocks\.(\d+)\.(.+)')
_DOWNSAMPLE = re.compile(
    r'encoder\.layers\.(\d+)\.downsample\.(reduction\.weight|norm\.weight|norm\.bias)')
_PLAIN = {
    'embeddings.patch_embeddings.projection.weight': 'patch_embed.projection.weight',
    'embeddings.patch_embeddings.projection.bias': 'patch_embed.projection.bias',
    'embeddings.norm.weight': 'patch_embed.norm.weight',
    'embeddings.norm.bias': 'patch_embed.norm.bias',
}
_BLOCK_PLAIN = {  # block key suffix (transformers 4 and 5 names) -> mmseg block key suffix
    'layernorm_before': 'norm1',
    'layernorm_after': 'norm2',
    'attention.output.dense': 'attn.w_msa.proj',
    'attention.o_proj': 'attn.w_msa.proj',
    'intermediate.dense': 'ffn.layers.0.0',
    'mlp.fc1': 'ffn.layers.0.0',
    'output.dense': 'ffn.layers.1',
    'mlp.fc2': 'ffn.layers.1',
}
_QKV = {'attention.self.query': 'q', 'attention.self.key': 'k', 'attention.self.value': 'v',
        'attention.q_proj': 'q', 'attention.k_proj': 'k', 'attention.v_proj': 'v'}
_TABLE = ('attention.self.relative_position_bias_table',
          'attention.relative_position_bias.relative_position_bias_table')
_INDEX = ('attention.self.relative_position_index',
          'attention.relative_position_bias.relative_position_index')
_IGNORED_PREFIXES = ('classifier.', )
# Unfold channel order (mmseg) <- block-wise concatenation order (transformers / original Swin):
# blocks (row, col) = (0,0), (1,0), (0,1), (1,1) reordered to (0,0), (0,1), (1,0), (1,1).
_UNFOLD_ORDER = [0, 2, 1, 3]


def _strip(key: str) -> str:
    return key[len('swin.'):] if key.startswith('swin.') else key


def is_hub_swin(state_dict: Mapping[str, Tensor]) -> bool:
    """Whether the keys are those of a ``transformers`` Swin (optionally prefixed ``swin.``)."""
    return any(_strip(k).startswith(('embeddings.patch_embeddings.', 'encoder.layers.'))
               for k in state_dict)


def relative_position_index(window_size: int) -> Tensor:
    """(w*w, w*w) int64 index into a (2w-1)^2-row bias table, as the original Swin computes it.

    Entry [a, b] = (dh + w - 1) * (2w - 1) + (dw + w - 1), (dh, dw) = position of token a minus
    position of token b (row-major tokens of a w x w window).
    """
    coords = torch.stack(torch.meshgrid(torch.arange(window_size), torch.arange(window_size),
                                        indexing='ij')).flatten(1)  # 2, w*w
    relative = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window_size - 1)
    return relative[..., 0] * (2 * window_size - 1) + relative[..., 1]


def unfold_order_reduction(weight: Tensor) -> Tensor:
    """Patch-merging reduction weight (out, 4C) from block-wise to ``nn.Unfold`` input order."""
    out_channels, in_channels = weight.shape
    weight = weight.reshape(out_channels, 4, in_channels // 4)[:, _UNFOLD_ORDER]
    return weight.transpose(1, 2).reshape(out_channels, in_channels)


def unfold_order_norm(vector: Tensor) -> Tensor:
    """Patch-merging LayerNorm weight or bias (4C, ) from block-wise to ``nn.Unfold`` order."""
    vector = vector.reshape(4, vector.shape[0] // 4)[_UNFOLD_ORDER]
    return vector.transpose(0, 1).reshape(-1)


def _window_size(table: Tensor, key: str, source: str) -> int:
    side = round(table.shape[0]**0.5)
    if side * side != table.shape[0] or side % 2 != 1:
        raise ValueError(f'{source}: {key} has {table.shape[0]} rows, not (2w - 1)^2 for a window '
                         'size w')
    return (side + 1) // 2


def convert_hub_swin(state_dict: Mapping[str, Tensor], source: str = 'state dict'
                     ) -> 'OrderedDict[str, Tensor]':
    """mmseg ``SwinTransformer`` state dict from a ``transformers`` Swin state dict.

    ``source`` names the origin in error messages (e.g. the file). The classifier head is dropped;
    any other key that is not part of the mapping (e.g. absolute position embeddings, a mask
    token) is an error, as is a block with a missing query, key, value or bias table.
    """
    if not is_hub_swin(state_dict):
        raise ValueError(f'{source}: not a transformers Swin checkpoint (no '
                         "'embeddings.patch_embeddings.*' or 'encoder.layers.*' keys, with or "
                         "without 'swin.')")
    out = OrderedDict()
    qkv: Dict[tuple, Dict[str, Tensor]] = {}
    indices: Dict[str, Tensor] = {}
    unknown = []
    final_norm = {}
    stages = set()
    for full_key, value in state_dict.items():
        key = _strip(full_key)
        if key.startswith(_IGNORED_PREFIXES):
            continue
        if key in _PLAIN:
            out[_PLAIN[key]] = value
            continue
        if key in ('layernorm.weight', 'layernorm.bias'):
            final_norm[key.split('.')[1]] = value
            continue
        if match := _DOWNSAMPLE.fullmatch(key):
            stage, name = match.groups()
            stages.add(int(stage))
            reorder = unfold_order_reduction if name == 'reduction.weight' else unfold_order_norm
            out[f'stages.{stage}.downsample.{name}'] = reorder(value)
            continue
        if match := _BLOCK.fullmatch(key):
            stage, block, rest = match.groups()
            stages.add(int(stage))
            prefix = f'stages.{stage}.blocks.{block}'
            module, _, param = rest.rpartition('.')
            if module in _BLOCK_PLAIN and param in ('weight', 'bias'):
                out[f'{prefix}.{_BLOCK_PLAIN[module]}.{param}'] = value
                continue
            if module in _QKV and param in ('weight', 'bias'):
                qkv.setdefault((prefix, param), {})[_QKV[module]] = value
                continue
            if rest in _TABLE:
                out[f'{prefix}.attn.w_msa.relative_position_bias_table'] = value
                continue
            if rest in _INDEX:
                indices[prefix] = value
                continue
        unknown.append(full_key)
    if unknown:
        raise ValueError(f'{source}: keys that are not part of a transformers Swin backbone: '
                         f'{unknown[:10]} ({len(unknown)} in all)')
    for (prefix, param), parts in qkv.items():
        missing = [name for name in 'qkv' if name not in parts]
        if missing:
            _, stage, _, block = prefix.split('.')
            raise ValueError(f'{source}: block {prefix} (encoder.layers.{stage}.blocks.{block}) '
                             f'has no {"/".join(missing)} {param} (query/key/value)')
        out[f'{prefix}.attn.w_msa.qkv.{param}'] = torch.cat([parts[n] for n in 'qkv'], dim=0)
    blocks = sorted({key.rsplit('.attn.', 1)[0] for key in out if '.attn.w_msa.' in key})
    for prefix in blocks:
        table_key = f'{prefix}.attn.w_msa.relative_position_bias_table'
        if table_key not in out:
            raise ValueError(f'{source}: {prefix} has no relative_position_bias_table')
        index = relative_position_index(_window_size(out[table_key], table_key, source))
        given = indices.get(prefix)
        if given is not None and not torch.equal(given.reshape(-1).long(), index.reshape(-1)):
            raise ValueError(f'{source}: the relative_position_index of {prefix} differs from '
                             'the original Swin index for its window size')
        out[f'{prefix}.attn.w_msa.relative_position_index'] = index
    if set(final_norm) != {'weight', 'bias'}:
        raise ValueError(f'{source}: no final layernorm.weight/layernorm.bias (the norm before '
                         'pooling)')
    last = max(stages)
    for param, value in final_norm.items():
        out[f'norm{last}.{param}'] = value
    return out


def _import_safetensors():
    try:
        from safetensors.torch import load_file
    except ImportError:
        raise ImportError('reading .safetensors checkpoints needs the safetensors package '
                          '(pip install safetensors; it is a dependency of lpd-bench, so '
                          're-run make setup)') from None
    return load_file


def weights_file_format(path: Union[str, Path]) -> Optional[str]:
    """'safetensors', 'torch' (zip or legacy pickle) or None, from the file's first bytes."""
    with open(path, 'rb') as f:
        head = f.read(9)
    if head[:4] == b'PK\x03\x04' or head[:1] == b'\x80':
        return 'torch'
    if len(head) == 9 and head[8:9] == b'{':  # 8-byte little-endian header size, JSON header
        return 'safetensors'
    return None


def read_weights_file(path: Union[str, Path]) -> dict:
    """The object a weights file holds: ``torch.load(weights_only=True)`` or safetensors.

    The format is read from the file's content (not its name); anything else is a ValueError
    naming the file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'checkpoint {str(path)!r} does not exist')
    kind = weights_file_format(path)
    if kind == 'torch':
        return torch.load(path, map_location='cpu', weights_only=True)
    if kind == 'safetensors':
        return _import_safetensors()(str(path), device='cpu')
    raise ValueError(f'checkpoint {str(path)!r} is neither a PyTorch file (torch.save, e.g. '
                     'pytorch_model.bin / .pth) nor a safetensors file (model.safetensors)')


def convert_hub_file(src: Union[str, Path], dst: Union[str, Path]) -> 'OrderedDict[str, Tensor]':
    """Read a hub Swin file (``model.safetensors`` / ``pytorch_model.bin``), write mmseg keys.

    ``dst`` is written with ``torch.save`` as a plain state dict (loadable with
    ``torch.load(weights_only=True)``); returns that state dict.
    """
    state = read_weights_file(src)
    if not isinstance(state, dict):
        raise ValueError(f'{src}: holds a {type(state).__name__}, expected a state dict')
    converted = convert_hub_swin(state, source=str(src))
    Path(dst).parent.mkdir(parents=True, exist_ok=True)
    torch.save(converted, dst)
    return converted
