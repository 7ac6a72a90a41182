"""Baseline methods, one package each (``baselines/<name>/``: components, ``spec.py``, README).

Importing this package imports every sub-package, which registers its components in mmseg's
registries (configs use ``custom_imports=dict(imports=['lpd_bench', 'baselines'])``), so a new
baseline folder needs no edit here.
"""
import importlib
import pkgutil

for _info in pkgutil.iter_modules(__path__):
    if _info.ispkg:
        importlib.import_module(f'{__name__}.{_info.name}')
