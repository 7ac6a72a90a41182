"""The public PBIP head: LPD's prototype head with the projected bank rows left unnormalised."""
from torch import Tensor

from lpd_bench.models.prototype_head import PrototypeHead
from mmseg.registry import MODELS


@MODELS.register_module()
class PBIPPublicHead(PrototypeHead):
    """:class:`~lpd_bench.models.prototype_head.PrototypeHead` whose similarity is
    ``s_i * <f/|f|, W_i(P)>``: the pixel features are normalised, the projected prototypes
    W_i(P) are not (the public PBIP code; LPD takes the cosine). Maps, pooled scores and the
    pooled shortcut all use it. Same arguments as the parent.
    """

    def normalize_prototypes(self, protos: Tensor) -> Tensor:
        """The projected prototypes as they are (no unit rows)."""
        return protos
