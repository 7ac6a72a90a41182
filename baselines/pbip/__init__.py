"""PBIP-style two-stage baseline: prototype bank (stage A) and frozen clustered prototypes (B)."""
from .clustered_prototypes import ClusteredPrototypes, propagate_bank_path
from .prototype_bank import (PrototypeBankError, build_prototype_bank, load_prototype_bank,
                             write_random_bank)

__all__ = ['ClusteredPrototypes', 'PrototypeBankError', 'build_prototype_bank',
           'load_prototype_bank', 'propagate_bank_path', 'write_random_bank']
