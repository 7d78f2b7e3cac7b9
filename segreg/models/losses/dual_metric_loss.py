"""``DualIoULoss`` / ``DualFbetaLoss``: the config names of the pixel forms.

Each is a thin factory: ``solver`` picks one small class, once, at build
time, and every other key goes to that class::

    solver='direct'       HingeBoundLoss       (default; no state, no sort)
    solver='exact'        ExactLPLoss          (per-batch LP; normalize,
                                                infeasible, term, learn_scale)
    solver='dual_ascent'  PersistentDualLoss   (eta_mu, count_momentum,
                                                learn_scale)
    solver='dataset'      DatasetDualLoss      (eta_mu, mu_max; the
                                                dataset-level Lagrangian)

The forms can also be named directly in a config (``type='ExactLPLoss',
metric='iou'``). Options of the single former class that belonged to
another form are accepted at their former default (they did nothing there)
and refused otherwise, naming the form they belong to; removed options
(``score``, ``term_floor``, ``shift_margin``: never measured away from
their defaults; ``init_scale`` of the direct form) likewise. State-dict keys
are unchanged
(``log_scale``, ``log_eps``, ``mu``, ``count``), so checkpoints load.
docs/losses.md explains the choice.
"""
from __future__ import annotations

from mmseg.registry import MODELS

from .dataset_dual_loss import DatasetDualLoss
from .exact_lp_loss import ExactLPLoss
from .hinge_bound_loss import HingeBoundLoss
from .persistent_dual_loss import PersistentDualLoss
from .pixel_metric_loss import PixelMetricLoss

__all__ = ['DualIoULoss', 'DualFbetaLoss', 'FORMS', 'resolve_form']

#: solver -> the class of that form
FORMS = dict(direct=HingeBoundLoss, exact=ExactLPLoss,
             dual_ascent=PersistentDualLoss, dataset=DatasetDualLoss)
#: options of some forms only, with the value they had in the others
_OWN = dict(surrogate=(('direct', ), 'hinge'), normalize=(('exact', ), 'sum'),
            infeasible=(('exact', ), 'direct'), term=(('exact', ), 'bound'),
            eta_mu=(('dual_ascent', 'dataset'), 0.01),
            count_momentum=(('dual_ascent', ), 0.1))
#: removed options and the only value they may still have
_REMOVED = dict(score='log_odds', term_floor=0.05, shift_margin=1.0)


def resolve_form(solver: str, options: dict):
    """``(cls, kwargs)`` of the form a former ``DualIoULoss(**options)``
    builds; raises naming the option that has no meaning there."""
    if solver not in FORMS:
        raise ValueError(f'solver must be one of {tuple(FORMS)}, got '
                         f'{solver!r}')
    kw = dict(options)
    for key, only in _REMOVED.items():
        if key in kw and kw.pop(key) != only:
            raise TypeError(f'{key}={options[key]!r} was removed (only '
                            f'{only!r} was ever measured); drop the key')
    for key, (forms, default) in _OWN.items():
        if key in kw and solver not in forms:
            if kw[key] != default:
                raise TypeError(f'{key}={kw[key]!r} applies to '
                                f"solver={' / '.join(map(repr, forms))} "
                                f'only, not {solver!r}')
            del kw[key]
    scale = kw.pop('learn_scale', None)
    if solver == 'direct':
        if scale:
            raise TypeError("learn_scale=True has no effect with "
                            "solver='direct' (its scale never trains)")
        if kw.pop('init_scale', 1.0) != 1.0:
            raise TypeError("solver='direct' has no init_scale (its scores "
                            "are the log-odds); use solver='exact'")
    elif scale is not None:
        kw['learn_scale'] = scale
    return FORMS[solver], kw


def _build(metric: str, solver: str, options: dict) -> PixelMetricLoss:
    cls, kw = resolve_form(solver, options)
    return cls(metric=metric, **kw)


def DualIoULoss(solver: str = 'direct', loss_name: str = 'loss_dual_iou',
                **options) -> PixelMetricLoss:
    """Class-wise dual-projected IoU loss (Ravi et al., AAAI 2020).

    Args:
        solver (str): ``'direct'`` (default, :class:`HingeBoundLoss`),
            ``'exact'`` (:class:`ExactLPLoss`) or ``'dual_ascent'``
            (:class:`PersistentDualLoss`).
        loss_name (str): Default ``'loss_dual_iou'``.
        **options: Of the chosen class (and :class:`PixelMetricLoss`).

    Returns:
        PixelMetricLoss: An instance of the chosen form.
    """
    if 'beta' in options:
        raise TypeError('DualIoULoss has no beta; use DualFbetaLoss')
    return _build('iou', solver, dict(options, loss_name=loss_name))


def DualFbetaLoss(solver: str = 'direct', beta: float = 1.0,
                  loss_name: str = 'loss_dual_fbeta',
                  **options) -> PixelMetricLoss:
    """Class-wise dual-projected F-beta loss; as :func:`DualIoULoss` with
    ``beta`` (recall weighted beta times as much as precision)."""
    return _build('fbeta', solver,
                  dict(options, beta=beta, loss_name=loss_name))


MODELS.register_module(name='DualIoULoss', module=DualIoULoss)
MODELS.register_module(name='DualFbetaLoss', module=DualFbetaLoss)
