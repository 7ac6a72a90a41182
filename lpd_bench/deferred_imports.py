"""Keep ``transformers`` out of every process that does not use it.

MMEngine 0.10.7 imports ``transformers`` when ``mmengine.optim`` is first imported, only to register
its ``Adafactor`` optimiser (``register_transformers_optimizers``). With transformers installed (the
test extra) that import costs seconds in every ``tools/train.py`` / ``tools/test.py`` /
post-stage process the runner starts, and no config of this project uses Adafactor.

:func:`defer_transformers_optimizers`, called first thing by ``import lpd_bench``, imports
``mmengine.optim`` with ``transformers`` hidden and registers ``Adafactor`` as a small factory
that imports transformers when (and only when) a config builds it. Nothing changes if
``mmengine.optim`` or ``transformers`` was already imported, or if transformers is not installed.
The import time saved is measured in reports/calibration_v3.md (part 3).
"""
import importlib.util
import sys

#: Name under which MMEngine registers transformers' optimiser.
ADAFACTOR = 'Adafactor'


def transformers_adafactor(*args, **kwargs):
    """``transformers.Adafactor(*args, **kwargs)``, importing transformers on first use."""
    from transformers import Adafactor
    return Adafactor(*args, **kwargs)


def defer_transformers_optimizers() -> bool:
    """Import ``mmengine.optim`` without importing transformers; register Adafactor lazily.

    Returns True when it deferred the import, False when it left things as they were.
    """
    if 'mmengine.optim' in sys.modules or 'transformers' in sys.modules:
        return False
    try:
        if importlib.util.find_spec('transformers') is None:
            return False
    except (ImportError, ValueError):
        return False
    sys.modules['transformers'] = None  # `from transformers import X` raises ImportError
    try:
        import mmengine.optim  # noqa: F401  (its try-import of transformers fails fast)
    finally:
        del sys.modules['transformers']
    from mmengine.registry import OPTIMIZERS
    if OPTIMIZERS.get(ADAFACTOR) is None:
        OPTIMIZERS.register_module(name=ADAFACTOR, module=transformers_adafactor)
    return True
