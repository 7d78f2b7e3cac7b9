"""Pure tensor functions: the math behind segreg's losses and heads.

Nothing here touches a registry or an ``nn.Module``; each function states the
equation it implements and points to the doc (docs/) that derives it.

* ``hinge_sums``: softmax log-odds and their per-class hinge sums, the
  default regularizer's math (:func:`hinge_counts`), with the one fused op
  (:func:`log_odds_hinge`) and its plain reference.
* ``hinge_bound``: the direct hinge bound on IoU / F-beta from the counts.
* ``fractional_lp``: the paper's LP, one binary problem and every class.
* ``water_filling``: the LP's threshold, by a sort (reference) and by
  Newton steps on per-class sums (the loss's, O(C) under DDP).
* ``metric_terms``, ``dataset_lagrangian``: the Lagrangians of the forms
  with dual variables, and the projected dual step.
* ``dataset_ratio``: the dataset-level bound as a running ratio of sums.
* ``rate_constraints``: precision at recall, recall at precision, ROC-AUC.
* ``soft_jaccard``: the anchors (Jaccard metric loss, masked Dice).
* ``projection``, ``nystrom``: the S-measure projection and Nystrom
  attention.
"""
from .dataset_lagrangian import (DatasetLagrangian, HingeSums,
                                 dataset_hinge_sums, dataset_lagrangian)
from .dataset_ratio import (DatasetRatio, dataset_ratio_terms, ratio_parts,
                            running_sums)
from .fractional_lp import (ClasswiseLP, classwise_fractional_lp,
                            classwise_lp_value, classwise_negative_hinge,
                            fractional_lp, lp_metric_bound)
from .hinge_bound import (HingeBound, classwise_hinge_bound, hinge_bound,
                          hinge_bound_from_counts)
from .hinge_sums import (HingeCounts, LogOddsHinge, class_gather, class_sum,
                         hinge_counts, log_odds_hinge,
                         log_odds_hinge_reference, own_log_odds,
                         pixel_weights, softmax_log_odds)
from .metric_terms import (PersistentDualLagrangian,
                           persistent_dual_lagrangian, projected_dual_step,
                           running_count)
from .nystrom import iterative_pinv, nystrom_attention, segment_means
from .projection import project_tau_eps
from .rate_constraints import (HingeRates, RateLagrangian, hinge_rates,
                               precision_at_recall,
                               precision_at_recall_from_rates,
                               precision_at_recall_threshold,
                               recall_at_precision,
                               recall_at_precision_from_rates,
                               roc_auc_from_rates, roc_auc_lagrangian,
                               targeted_hinge_rates)
from .soft_jaccard import jaccard_metric_loss, soft_counts, soft_dice_loss
from .water_filling import (ClasswiseThreshold, NewtonThreshold,
                            classwise_threshold, newton_threshold)

__all__ = [
    'softmax_log_odds', 'own_log_odds', 'pixel_weights', 'class_sum',
    'class_gather', 'LogOddsHinge', 'log_odds_hinge',
    'log_odds_hinge_reference', 'HingeCounts', 'hinge_counts', 'HingeBound',
    'hinge_bound_from_counts', 'hinge_bound', 'classwise_hinge_bound',
    'ClasswiseLP', 'fractional_lp', 'classwise_fractional_lp',
    'classwise_negative_hinge', 'classwise_lp_value', 'lp_metric_bound',
    'ClasswiseThreshold', 'classwise_threshold', 'NewtonThreshold',
    'newton_threshold', 'PersistentDualLagrangian',
    'persistent_dual_lagrangian', 'running_count', 'projected_dual_step',
    'HingeSums', 'DatasetLagrangian', 'dataset_hinge_sums',
    'dataset_lagrangian', 'DatasetRatio', 'dataset_ratio_terms',
    'ratio_parts', 'running_sums', 'HingeRates', 'RateLagrangian', 'hinge_rates',
    'precision_at_recall', 'recall_at_precision', 'roc_auc_lagrangian',
    'precision_at_recall_threshold', 'targeted_hinge_rates',
    'precision_at_recall_from_rates', 'recall_at_precision_from_rates',
    'roc_auc_from_rates', 'project_tau_eps', 'soft_counts',
    'jaccard_metric_loss', 'soft_dice_loss', 'nystrom_attention',
    'iterative_pinv', 'segment_means'
]
