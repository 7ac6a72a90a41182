"""Load MMEngine checkpoints with ``torch.load(weights_only=True)`` on torch >= 2.6.

MMEngine 0.10.7 calls ``torch.load`` without ``weights_only``; since torch 2.6 that means
``weights_only=True``, which rejects what an MMEngine runner puts into its checkpoints (the
message hub's ``HistoryBuffer`` with its numpy arrays and scalars). Instead of turning the safe
unpickler off, this module allowlists exactly those globals (found by saving a 2-iteration
Runner checkpoint and listing ``torch.serialization.get_unsafe_globals_in_checkpoint``):

- ``mmengine.logging.history_buffer.HistoryBuffer``
- ``numpy.ndarray``, ``numpy.dtype``, ``numpy._core.multiarray._reconstruct``,
  ``numpy._core.multiarray.scalar`` (also under their numpy 1.x name ``numpy.core.multiarray.*``)
- the dtype classes the unpickler builds (``numpy.dtypes.Float64DType``, ``Int64DType``, ...:
  the list does not show them, loading does); all bool/integer/float/complex ones are allowed
- ``builtins.getattr``, which pickle uses to store ``HistoryBuffer.min/max/current/mean``;
  it is bound to :func:`history_buffer_method`, a getattr that only resolves public methods of
  ``HistoryBuffer`` and rejects everything else.

It also replaces MMEngine's local-file checkpoint loader by :func:`load_local_checkpoint`,
which passes ``weights_only=True`` explicitly and turns the unpickler's refusal into a
:class:`CheckpointGlobalsError` naming the file and the globals that are not allowlisted.
Everything runs on ``import lpd_bench``. Third-party weights (URLs, other files) keep loading
with ``weights_only=True``.
"""
import inspect
import os.path as osp
import pickle

import numpy as np
import torch
from mmengine.logging.history_buffer import HistoryBuffer
from mmengine.runner.checkpoint import CheckpointLoader

_NUMPY_CORE = getattr(np, '_core', None) or np.core
_NUMPY_CORE_NAMES = ('numpy._core.multiarray', 'numpy.core.multiarray')
#: numpy arrays/scalars unpickle through ``np.dtype(code)`` and then build that dtype's class
#: (``numpy.dtypes.Float64DType``...): allow bool, integer, float and complex dtypes, not object.
_NUMERIC_DTYPE_CODES = '?' + np.typecodes['AllInteger'] + np.typecodes['AllFloat']


class CheckpointGlobalsError(pickle.UnpicklingError):
    """A checkpoint holds globals that ``torch.load(weights_only=True)`` does not allow."""


def history_buffer_method(owner, name):
    """Restricted ``getattr``: only ``HistoryBuffer``'s public methods (pickled statistics)."""
    public = isinstance(name, str) and not name.startswith('_')
    method = inspect.getattr_static(owner, name, None) if owner is HistoryBuffer and public else None
    if not inspect.isfunction(method):
        raise CheckpointGlobalsError(
            f'checkpoint asks for getattr({owner!r}, {name!r}); only public methods of '
            'mmengine HistoryBuffer are allowed (lpd_bench.engine.checkpoint_io)')
    return method


def mmengine_safe_globals():
    """The globals (objects or ``(object, pickled name)`` pairs) MMEngine checkpoints contain."""
    safe = [HistoryBuffer, np.ndarray, np.dtype, (history_buffer_method, 'builtins.getattr')]
    safe += sorted({type(np.dtype(code)) for code in _NUMERIC_DTYPE_CODES}, key=str)
    for func_name in ('_reconstruct', 'scalar'):
        func = getattr(_NUMPY_CORE.multiarray, func_name)
        safe += [(func, f'{module}.{func_name}') for module in _NUMPY_CORE_NAMES]
    return safe


def register_safe_globals():
    """Allowlist :func:`mmengine_safe_globals` for ``torch.load(weights_only=True)``."""
    torch.serialization.add_safe_globals(mmengine_safe_globals())


def load_local_checkpoint(filename, map_location=None):
    """MMEngine's local-file loader with ``weights_only=True`` and a clear error on refusal."""
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    try:
        return torch.load(filename, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as err:
        if isinstance(err, CheckpointGlobalsError):
            raise
        try:
            missing = sorted(torch.serialization.get_unsafe_globals_in_checkpoint(filename))
        except ValueError:  # not a zip checkpoint: the unpickler's own message must do
            missing = []
        reason = str(err).partition('WeightsUnpickler error:')[2].partition('Check the doc')[0]
        raise CheckpointGlobalsError(
            f'{filename}: torch.load(weights_only=True) refused the checkpoint; globals not '
            f'allowlisted: {missing or "none in the static scan"}; unpickler: '
            f'{reason.strip().rstrip(".") or err}. If you trust the file, allowlist them with '
            'torch.serialization.add_safe_globals (see lpd_bench.engine.checkpoint_io).') from err


register_safe_globals()
CheckpointLoader.register_scheme(prefixes='', loader=load_local_checkpoint, force=True)
