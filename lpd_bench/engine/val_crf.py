"""NoCRFInValidationHook: validation during training runs without the test-time DenseCRF.

The CRF does not change the model, only the post-processing of its predictions, and the
best-on-val checkpoint is chosen on the no-CRF mIoU (WSSSMetric's flat ``mIoU``: oracle gating,
no CRF), so running it at every validation would only cost time. The hook switches the model's
CRF off in ``before_val_epoch`` and restores the previous setting in ``after_val_epoch``; the test
loop is untouched. Models without a CRF switch (``set_crf``) are left alone.
"""
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmseg.registry import HOOKS


def unwrap(model):
    """The model inside a (distributed) wrapper, or the model itself."""
    return model.module if is_model_wrapper(model) else model


@HOOKS.register_module()
class NoCRFInValidationHook(Hook):
    """Turn ``test_cfg.crf`` off for validation epochs (module docstring)."""

    priority = 'NORMAL'

    def __init__(self):
        self._previous = None

    def before_val_epoch(self, runner) -> None:
        model = unwrap(runner.model)
        if hasattr(model, 'set_crf'):
            self._previous = model.set_crf(False)

    def after_val_epoch(self, runner, metrics=None) -> None:
        model = unwrap(runner.model)
        if self._previous is not None and hasattr(model, 'set_crf'):
            model.set_crf(self._previous)
        self._previous = None
