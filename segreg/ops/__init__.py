"""Pure tensor functions: the math behind segreg's losses and heads.

Nothing here touches a registry or an ``nn.Module``; each function states the
equation it implements and points to the doc (docs/) that derives it.

Used by the losses (``segreg.models.losses``): the scores, the class-wise
sums and bounds, the LP threshold, the per-class terms and the dual step.
Reference forms (one binary problem, for tests, oracles and readers; no
loss calls them): ``fractional_lp``, ``hinge_bound``,
``classwise_fractional_lp``, ``classwise_hinge_bound``, ``hinge_rates``,
``precision_at_recall``, ``recall_at_precision``, ``roc_auc_lagrangian``,
``precision_at_recall_threshold``.
"""
__all__: list = []
from .nystrom import (  # noqa: F401,E402
    iterative_pinv, nystrom_attention, segment_means)
from .projection import project_tau_eps  # noqa: F401,E402
from .scores import softmax_log_odds  # noqa: F401,E402
from .fractional_lp import (  # noqa: F401,E402
    ClasswiseLP, ClasswiseThreshold, HingeBound, classwise_fractional_lp,
    classwise_hinge_bound, classwise_lp_value, classwise_negative_hinge,
    classwise_threshold, fractional_lp, hinge_bound, hinge_bound_from_counts,
    lp_metric_bound, surrogate)
from .metric_terms import (  # noqa: F401,E402
    HingeCounts, PersistentDualLagrangian, classwise_hinge_counts,
    feasibility_shift, metric_term, persistent_dual_lagrangian,
    projected_dual_step, running_count)
from .rate_constraints import (  # noqa: F401,E402
    HingeRates, RateLagrangian, hinge_rates, precision_at_recall,
    precision_at_recall_from_rates, precision_at_recall_threshold,
    recall_at_precision, recall_at_precision_from_rates, roc_auc_from_rates,
    roc_auc_lagrangian, targeted_hinge_rates)
__all__ += [  # used by the losses
    'softmax_log_odds', 'classwise_hinge_counts', 'HingeCounts',
    'classwise_threshold', 'ClasswiseThreshold', 'classwise_negative_hinge',
    'classwise_lp_value', 'lp_metric_bound', 'hinge_bound_from_counts',
    'metric_term', 'feasibility_shift', 'persistent_dual_lagrangian',
    'PersistentDualLagrangian', 'running_count', 'projected_dual_step',
    'surrogate', 'project_tau_eps', 'targeted_hinge_rates',
    'precision_at_recall_from_rates', 'recall_at_precision_from_rates',
    'roc_auc_from_rates', 'HingeRates', 'RateLagrangian'
]
__all__ += [  # reference forms (tests, oracles, readers)
    'fractional_lp', 'classwise_fractional_lp', 'ClasswiseLP', 'hinge_bound',
    'classwise_hinge_bound', 'HingeBound', 'hinge_rates',
    'precision_at_recall', 'recall_at_precision', 'roc_auc_lagrangian',
    'precision_at_recall_threshold'
]
__all__ += ['nystrom_attention', 'iterative_pinv', 'segment_means']
from .dataset_lagrangian import (  # noqa: F401,E402
    DatasetLagrangian, HingeSums, dataset_hinge_sums, dataset_lagrangian)
__all__ += ['HingeSums', 'DatasetLagrangian', 'dataset_hinge_sums',
            'dataset_lagrangian']
from .class_sums import (  # noqa: F401,E402
    ClassIndex, class_gather, class_index, class_sum)
__all__ += ['class_index', 'class_sum', 'class_gather', 'ClassIndex']
from .hinge_sums import (  # noqa: F401,E402
    LogOddsScores, hinge_counts, log_odds_scores, negative_hinge_sums,
    positive_hinge_sums)
__all__ += ['log_odds_scores', 'negative_hinge_sums', 'positive_hinge_sums',
            'hinge_counts', 'LogOddsScores']
from .water_filling import NewtonThreshold, newton_threshold  # noqa: F401,E402
__all__ += ['newton_threshold', 'NewtonThreshold']
from .soft_jaccard import jaccard_metric_loss, soft_counts, soft_dice_loss  # noqa: F401,E402
__all__ += ['soft_counts', 'jaccard_metric_loss', 'soft_dice_loss']
