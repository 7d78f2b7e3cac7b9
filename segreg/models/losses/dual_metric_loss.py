"""``DualIoULoss`` / ``DualFbetaLoss``: the config names of the pixel forms.

Each is a thin factory: ``solver`` picks one small class, once, at build
time, and every other key goes to that class::

    solver='direct'       HingeBoundLoss       (default; no state, no sort)
    solver='exact'        ExactLPLoss          (per-batch LP; learn_scale,
                                                normalize)
    solver='dual_ascent'  PersistentDualLoss   (learn_scale, eta_mu)
    solver='dataset'      DatasetDualLoss      (eta_mu, mu_max; the
                                                dataset-level Lagrangian)
    solver='ratio'        DatasetRatioLoss     (gamma_min; the dataset-
                                                level bound, running ratio)

The forms can also be named directly in a config (``type='ExactLPLoss',
metric='iou'``). An option that the chosen form does not take is an error
that names the forms it belongs to. docs/losses.md explains the choice.
"""
from __future__ import annotations

import inspect

from mmseg.registry import MODELS

from .dataset_dual_loss import DatasetDualLoss
from .dataset_ratio_loss import DatasetRatioLoss
from .exact_lp_loss import ExactLPLoss
from .hinge_bound_loss import HingeBoundLoss
from .persistent_dual_loss import PersistentDualLoss
from .pixel_metric_loss import PixelMetricLoss

__all__ = ['DualIoULoss', 'DualFbetaLoss', 'FORMS', 'resolve_form']

#: solver -> the class of that form
FORMS = dict(direct=HingeBoundLoss, exact=ExactLPLoss,
             dual_ascent=PersistentDualLoss, dataset=DatasetDualLoss,
             ratio=DatasetRatioLoss)


def _options(cls: type) -> set:
    """The keyword options of a form (its own and the base's)."""
    keys = set()
    for klass in (cls, PixelMetricLoss):
        keys |= set(inspect.signature(klass.__init__).parameters)
    return keys - {'self', 'kwargs'}


def resolve_form(solver: str, options: dict) -> type:
    """The class of ``solver``; raises naming the forms that take an
    option the chosen one does not."""
    if solver not in FORMS:
        raise ValueError(f'solver must be one of {tuple(FORMS)}, got '
                         f'{solver!r}')
    cls = FORMS[solver]
    for key in sorted(set(options) - _options(cls)):
        owners = [f'{s!r} ({c.__name__})' for s, c in FORMS.items()
                  if key in _options(c)]
        if not owners:
            raise TypeError(f'{key!r} is not an option of {cls.__name__} '
                            f'(solver={solver!r}) nor of any other form; '
                            'see docs/losses.md')
        raise TypeError(f"{key!r} is an option of solver="
                        f"{' / '.join(owners)}, not of solver={solver!r} "
                        f'({cls.__name__}); see docs/losses.md')
    return cls


def DualIoULoss(solver: str = 'direct', loss_name: str = 'loss_dual_iou',
                **options) -> PixelMetricLoss:
    """Class-wise dual-projected IoU loss (Ravi et al., AAAI 2020).

    Args:
        solver (str): ``'direct'`` (default, :class:`HingeBoundLoss`),
            ``'exact'`` (:class:`ExactLPLoss`), ``'dual_ascent'``
            (:class:`PersistentDualLoss`), ``'dataset'``
            (:class:`DatasetDualLoss`) or ``'ratio'``
            (:class:`DatasetRatioLoss`).
        loss_name (str): Default ``'loss_dual_iou'``.
        **options: Of the chosen class (and :class:`PixelMetricLoss`).

    Returns:
        PixelMetricLoss: An instance of the chosen form.
    """
    for key in ('beta', 'metric'):
        if key in options:
            raise TypeError(f'DualIoULoss has no {key}; use DualFbetaLoss')
    return resolve_form(solver, options)(metric='iou', loss_name=loss_name,
                                         **options)


def DualFbetaLoss(solver: str = 'direct', beta: float = 1.0,
                  loss_name: str = 'loss_dual_fbeta',
                  **options) -> PixelMetricLoss:
    """Class-wise dual-projected F-beta loss; as :func:`DualIoULoss` with
    ``beta`` (recall weighted beta times as much as precision)."""
    if 'metric' in options:
        raise TypeError("DualFbetaLoss has no metric; use DualIoULoss for "
                        'IoU')
    return resolve_form(solver, options)(metric='fbeta', beta=beta,
                                         loss_name=loss_name, **options)


MODELS.register_module(name='DualIoULoss', module=DualIoULoss)
MODELS.register_module(name='DualFbetaLoss', module=DualFbetaLoss)
