"""FrozenImageEncoder: a fixed backbone + global pooling + fixed random projection (PBIP/LPD refiner).

The two encoders the configs use (``configs/_base_/models/``):

- ``lpd_mit_b1.py``: the paper/public-code setting, an ImageNet Swin-T (``OriginalSwinTransformer``:
  mmseg's ``SwinTransformer`` computing as the original/hub Swin does, embed 96, depths
  (2, 2, 6, 2), heads (3, 6, 12, 24), window 7) whose last stage (768 channels, after its output
  LayerNorm) is average-pooled, as ``transformers``' ``SwinModel.pooler_output``, then a fixed
  random 768 -> 512 projection. Set ``checkpoint`` to the hub file of
  ``microsoft/swin-tiny-patch4-window7-224`` (``model.safetensors`` or ``pytorch_model.bin``,
  converted on load, see :mod:`lpd_bench.models.swin_hub_weights` and tools/convert_weights.py)
  or to an mmseg-format Swin-T state dict; without one the weights are random.
- ``lpd_mit_tiny_cpu.py``: the CPU preset. A random two-stage ``PatchMLPEncoder`` (4 x 4
  patches -> 64, 2 x 2 merge -> 128; ~36 k parameters) on 16 px cut-outs: the CPU preset has no
  ImageNet checkpoint anyway, and its forward + input-backward on a batch's cut-outs is cheap
  (far cheaper than a narrow MiT on 32 px), which matters because the refiner embeds two
  cut-outs per selected prototype per image every iteration (the refiner's measured share of
  the step: reports/perf.md, preset cpu, lpd_step_after vs lpd_step_after_no_refiner).

Speed options (off by default: the configs compute as before): ``attention='sdpa'`` (Swin window
attention through ``F.scaled_dot_product_attention``, the same function), ``channels_last=True``
(the convolutional patch embedding in channels-last memory format) and ``compile=True``
(``torch.compile`` of the backbone, eager when it is not available). Bench cases:
``lpd-bench bench --preset paper --cases ...`` (lpd_bench/models/spec.py, ``ENCODER_SPEED_CASES``).
"""
import warnings
from typing import Optional, Union

import torch
from mmengine.model import BaseModule
from mmseg.registry import MODELS

from . import original_swin  # noqa: F401  (registers OriginalSwinTransformer, the paper encoder)
from .original_swin import ATTENTION_MODES, set_window_attention
from .swin_hub_weights import convert_hub_swin, is_hub_swin, read_weights_file

#: Not a compile failure: re-raised, never a reason to fall back to eager.
_OUT_OF_MEMORY = getattr(torch, 'OutOfMemoryError', None) or torch.cuda.OutOfMemoryError


def load_state_dict_weights_only(path: str) -> dict:
    """Backbone state dict from a weights file: ``torch.load(weights_only=True)`` or safetensors.

    Accepts a bare state dict or one nested under 'state_dict' / 'model'; when keys carry a
    'backbone.' prefix (mmseg/mmpretrain model checkpoints) only those are kept, prefix removed.
    A ``transformers`` Swin (the model hub's ``model.safetensors`` / ``pytorch_model.bin``, keys
    ``swin.embeddings.*``, ``swin.encoder.*``) is converted to mmseg ``SwinTransformer`` keys.
    """
    try:
        ckpt = read_weights_file(path)
    except (FileNotFoundError, ValueError) as error:
        raise type(error)(f'FrozenImageEncoder: {error}') from None
    for key in ('state_dict', 'model'):
        if isinstance(ckpt, dict) and isinstance(ckpt.get(key), dict):
            ckpt = ckpt[key]
            break
    if not isinstance(ckpt, dict):
        raise ValueError(f'FrozenImageEncoder: checkpoint {path!r} holds a {type(ckpt).__name__}, '
                         'expected a state dict')
    if is_hub_swin(ckpt):
        return convert_hub_swin(ckpt, source=f'FrozenImageEncoder: checkpoint {path!r}')
    prefix = 'backbone.'
    if any(k.startswith(prefix) for k in ckpt):
        ckpt = {k[len(prefix):]: v for k, v in ckpt.items() if k.startswith(prefix)}
    return ckpt


@MODELS.register_module()
class FrozenImageEncoder(BaseModule):
    """(N, 3, H, W) -> (N, out_dim): frozen backbone, GAP of one output stage, fixed projection.

    Always in eval mode (``train()`` is overridden) with ``requires_grad=False`` on every
    parameter; gradients still flow to the input. Weights are fixed at construction (the
    backbone's own ``init_weights`` then the checkpoint, loaded strictly); ``init_weights`` is a
    no-op so that a runner's model-wide initialisation cannot overwrite them.

    Args:
        backbone: config of any registered mmseg backbone returning a tuple/list of feature maps.
        feature_dim: channels of the chosen output stage (checked at the first forward).
        out_dim: embedding size. None: no projection, the pooled features are returned.
            Otherwise a fixed random matrix (feature_dim, out_dim), entries N(0, 1/feature_dim),
            drawn from ``torch.Generator().manual_seed(projection_seed)`` and stored as a buffer.
        checkpoint: optional backbone weights file (see :func:`load_state_dict_weights_only`).
        out_index: which element of the backbone's outputs to pool (default the last).
        projection_seed: seed of the projection matrix.
        attention: 'eager' (default: the backbone's own attention, mmseg's matmul-softmax-matmul
            for Swin) or 'sdpa': every Swin window attention (mmseg ``WindowMSA``) computes
            through ``F.scaled_dot_product_attention``, the relative-position bias (+ the
            shifted-window mask) as its additive mask
            (:class:`~lpd_bench.models.original_swin.SdpaWindowMSA`); same function, same state
            dict. 'sdpa' on a backbone without Swin window attention is an error.
        channels_last: run the backbone's convolutions in channels-last memory format (the conv
            weights converted once, the input converted at each call); where the backbone has
            no convolution (4-D weight) it does nothing. Swin: its patch embedding.
        compile: False (default), True or a dict of ``torch.compile`` keyword arguments: the
            backbone is called through ``torch.compile(backbone, **kwargs)``. The compiled
            wrapper is not a submodule (the state dict is unchanged). Where ``torch.compile`` is
            missing, or fails when building or at a call, a warning is issued and the backbone
            runs eagerly from then on (``compiled`` says which). The first calls (and a call
            with a new number of cut-outs) compile: time it after a few warm-up calls.
    """

    def __init__(self, backbone: dict, feature_dim: int, out_dim: Optional[int] = 512,
                 checkpoint: Optional[str] = None, out_index: int = -1, projection_seed: int = 0,
                 attention: str = 'eager', channels_last: bool = False,
                 compile: Union[bool, dict] = False):
        super().__init__()
        if attention not in ATTENTION_MODES:
            raise ValueError(f'FrozenImageEncoder: attention must be one of {ATTENTION_MODES}, '
                             f'got {attention!r}')
        self.backbone = MODELS.build(backbone)
        if hasattr(self.backbone, 'init_weights'):
            self.backbone.init_weights()
        if checkpoint is not None:
            state = load_state_dict_weights_only(checkpoint)
            own = self.backbone.state_dict()
            wrong = [f'{k} {tuple(v.shape)} vs {tuple(own[k].shape)}' for k, v in state.items()
                     if k in own and v.shape != own[k].shape]
            if wrong:
                raise ValueError(f'FrozenImageEncoder: checkpoint {checkpoint!r} does not match '
                                 f'backbone {backbone.get("type")}: shapes (checkpoint vs model) '
                                 f'{wrong[:5]} ({len(wrong)} total)')
            result = self.backbone.load_state_dict(state, strict=False)
            if result.missing_keys or result.unexpected_keys:
                raise ValueError(
                    f'FrozenImageEncoder: checkpoint {checkpoint!r} does not match backbone '
                    f'{backbone.get("type")}: missing {result.missing_keys[:5]} '
                    f'({len(result.missing_keys)} total), unexpected '
                    f'{result.unexpected_keys[:5]} ({len(result.unexpected_keys)} total)')
        self.feature_dim = feature_dim
        self.out_index = out_index
        self.out_dim = feature_dim if out_dim is None else out_dim
        if out_dim is None:
            self.projection = None
        else:
            gen = torch.Generator().manual_seed(projection_seed)
            self.register_buffer(
                'projection', torch.randn(feature_dim, out_dim, generator=gen) / feature_dim**0.5)
        self.requires_grad_(False)
        self.train(False)
        self._is_init = True
        self.attention = attention
        if set_window_attention(self.backbone, attention) == 0 and attention != 'eager':
            raise ValueError(f'FrozenImageEncoder: attention={attention!r} needs a backbone with '
                             f'Swin window attention, {backbone.get("type")} has none')
        # Only where there is a convolution to run channels-last (Swin: the patch embedding).
        self.channels_last = bool(channels_last) and any(
            p.dim() == 4 for p in self.backbone.parameters())
        if self.channels_last:
            self.backbone.to(memory_format=torch.channels_last)
        # Kept out of the module tree (no state dict keys, not moved twice): it wraps
        # self.backbone, whose parameters it shares.
        self.__dict__['_compiled_backbone'] = self._compile_backbone(compile) if compile else None

    def _compile_backbone(self, options: Union[bool, dict]):
        kwargs = {} if options is True else dict(options)
        compiler = getattr(torch, 'compile', None)
        if compiler is None:
            warnings.warn('FrozenImageEncoder: torch.compile is not available in torch '
                          f'{torch.__version__}; the backbone runs eagerly')
            return None
        try:
            return compiler(self.backbone, **kwargs)
        except Exception as error:  # e.g. a Python version Dynamo does not support
            warnings.warn(f'FrozenImageEncoder: torch.compile failed ({type(error).__name__}: '
                          f'{error}); the backbone runs eagerly')
            return None

    @property
    def compiled(self) -> bool:
        """Whether the backbone is called through ``torch.compile`` (``compile`` set and it has
        not failed)."""
        return self.__dict__.get('_compiled_backbone') is not None

    def init_weights(self):
        """No-op: the weights were fixed at construction (backbone init + checkpoint)."""

    def train(self, mode: bool = True):
        """Stays in eval mode whatever ``mode`` is (frozen normalisation/dropout)."""
        return super().train(False)

    def backbone_features(self, x: torch.Tensor):
        """The backbone's outputs for ``x``, through the compiled backbone if there is one
        (falling back to the eager backbone, for good, if a compiled call fails)."""
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        compiled = self.__dict__.get('_compiled_backbone')
        if compiled is not None:
            try:
                return compiled(x)
            except _OUT_OF_MEMORY:
                raise
            except Exception as error:  # no compiler toolchain, an unsupported op, ...
                warnings.warn(f'FrozenImageEncoder: the compiled backbone failed '
                              f'({type(error).__name__}: {str(error)[:300]}); it runs eagerly '
                              'from now on')
                self.__dict__['_compiled_backbone'] = None
        return self.backbone(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.backbone_features(x)[self.out_index]
        if feats.shape[1] != self.feature_dim:
            raise ValueError(f'FrozenImageEncoder: output {self.out_index} of the backbone has '
                             f'{feats.shape[1]} channels, feature_dim says {self.feature_dim}')
        pooled = feats.mean(dim=(2, 3))
        return pooled if self.projection is None else pooled @ self.projection
