"""Pure tensor functions: the math behind segreg's losses and heads.

Nothing here touches a registry or an ``nn.Module``; each function states the
equation it implements and points to the doc (docs/) that derives it.
"""
__all__: list = []
from .nystrom import (  # noqa: F401,E402
    iterative_pinv, nystrom_attention, segment_means)
from .projection import project_tau_eps  # noqa: F401,E402
from .fractional_lp import (  # noqa: F401,E402
    ClasswiseLP, ClasswiseThreshold, HingeBound, classwise_fractional_lp,
    classwise_hinge_bound, classwise_lp_value, classwise_negative_hinge,
    classwise_threshold, fractional_lp, hinge_bound, hinge_bound_from_counts,
    lp_metric_bound, surrogate)
from .rate_constraints import (  # noqa: F401,E402
    HingeRates, RateLagrangian, hinge_rates, precision_at_recall,
    precision_at_recall_threshold, recall_at_precision, roc_auc_lagrangian)
__all__ += [  # dual-projected metric regularizer ops
    'project_tau_eps', 'fractional_lp', 'classwise_fractional_lp',
    'classwise_threshold', 'classwise_negative_hinge', 'classwise_lp_value',
    'lp_metric_bound', 'hinge_bound', 'classwise_hinge_bound',
    'hinge_bound_from_counts', 'ClasswiseThreshold', 'ClasswiseLP',
    'HingeBound', 'surrogate', 'hinge_rates', 'precision_at_recall', 'recall_at_precision',
    'roc_auc_lagrangian', 'precision_at_recall_threshold', 'HingeRates',
    'RateLagrangian'
]
__all__ += ['nystrom_attention', 'iterative_pinv', 'segment_means']
from .soft_jaccard import jaccard_metric_loss, soft_counts, soft_dice_loss  # noqa: F401,E402
__all__ += ['soft_counts', 'jaccard_metric_loss', 'soft_dice_loss']
