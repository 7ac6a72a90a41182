"""PBIP stage B: the frozen prototype bank of stage A as a :class:`PrototypeSource`."""
from torch import Tensor

from lpd_bench.apis import register_config_alias
from lpd_bench.models.prototypes import PrototypeSource
from mmseg.registry import MODELS

from .prototype_bank import PrototypeBankError, load_prototype_bank


@MODELS.register_module()
class ClusteredPrototypes(PrototypeSource):
    """Fixed clustered prototypes (C*k, dim) loaded from ``bank_path``; never trained.

    The matrix is a buffer (saved in checkpoints, moved with the model, no gradient); the head
    still projects it with its per-stage MLPs and the mask refiner compares against its raw rows.

    Args:
        num_classes: C (passed by the head).
        bank_path: file written by PBIP's stage A (``python -m baselines.pbip.build_bank``).
        num_per_class: k the bank must have been built with.
        dim: width of the bank's rows (the frozen encoder's output width).
    """

    def __init__(self, num_classes: int, bank_path: str, num_per_class: int = 3,
                 dim: int = 512, **kwargs):
        super().__init__(num_classes, num_per_class, dim, **kwargs)
        bank = load_prototype_bank(bank_path)
        prototypes = bank['prototypes']
        expected = (self.num_prototypes, dim)
        if tuple(prototypes.shape) != expected or bank.get('num_per_class') != num_per_class:
            raise PrototypeBankError(
                f'prototype bank {bank_path!r} has shape {tuple(prototypes.shape)} '
                f'(num_per_class={bank.get("num_per_class")}, '
                f'num_classes={bank.get("num_classes")}), but the model expects {expected} '
                f'(num_classes={num_classes}, num_per_class={num_per_class}, dim={dim}); '
                'rebuild it with '
                f'`python -m baselines.pbip.build_bank CONFIG --out {bank_path} '
                f'--num-per-class {num_per_class}` or change the config')
        self.bank_path = bank_path
        self.register_buffer('prototypes', prototypes.float().clone())

    def forward(self) -> Tensor:
        return self.prototypes


@register_config_alias('bank_path')
def set_bank_path(cfg, bank_path) -> None:
    """``--cfg-options bank_path=PATH``: point the config's ``ClusteredPrototypes`` at a bank."""
    prototypes = cfg.model.get('decode_head', {}).get('prototypes', {})
    if prototypes.get('type') != 'ClusteredPrototypes':
        raise ValueError(f'bank_path={bank_path!r} given, but the config\'s prototypes are '
                         f'{prototypes.get("type")!r}, not ClusteredPrototypes')
    cfg.bank_path = bank_path
    propagate_bank_path(cfg)


def propagate_bank_path(cfg) -> None:
    """Copy a config's top-level ``bank_path`` (e.g. set by ``--cfg-options bank_path=...``) into
    its ``ClusteredPrototypes`` source, in place; configs without one are left alone."""
    prototypes = cfg.get('model', {}).get('decode_head', {}).get('prototypes', {})
    if cfg.get('bank_path', None) and prototypes.get('type') == 'ClusteredPrototypes':
        prototypes['bank_path'] = cfg['bank_path']
