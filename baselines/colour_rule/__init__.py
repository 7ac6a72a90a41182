"""The colour-statistics centroid rule (``colour_rule``): a reference method that needs no training.

Importing registers, in mmseg's registries, :class:`ColourCentroidSegmentor` (``MODELS``) and
:class:`NotTrainedConstructor` (``OPTIM_WRAPPER_CONSTRUCTORS``). The fit is
``python -m baselines.colour_rule.fit``. See README.md.
"""
from .rule import (ClassStatistics, ColourRuleError, RuleSettings, block_features, block_scores,
                   mahalanobis)
from .segmentor import ColourCentroidSegmentor, NotTrainedConstructor

__all__ = ['ClassStatistics', 'ColourCentroidSegmentor', 'ColourRuleError',
           'NotTrainedConstructor', 'RuleSettings', 'block_features', 'block_scores',
           'mahalanobis']
