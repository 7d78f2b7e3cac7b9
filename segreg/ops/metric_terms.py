r"""Per-class pieces of the losses that keep dual variables (no module state).

The persistent-dual Lagrangian of the per-batch LP, the running positive
count it divides by, and the projected dual step shared by every loss with
duals. Derivations: docs/regularizer_derivation.md (sections 10 and 12).
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import torch
from torch import Tensor

__all__ = [
    'PersistentDualLagrangian', 'persistent_dual_lagrangian',
    'running_count', 'projected_dual_step'
]


class PersistentDualLagrangian(NamedTuple):
    """Output of :func:`persistent_dual_lagrangian` (all (C,)).

    Attributes:
        value (Tensor): ``L_c`` (the per-class loss term).
        primal (Tensor): ``b^2 eps_c + fp_c / nbar_c``.
        slack (Tensor): ``1 - hit_c / n_c`` (``> 0``: violated).
        bound (Tensor): ``1 / primal`` (IoU) or ``(1 + b^2) / (1 + primal)``.
    """
    value: Tensor
    primal: Tensor
    slack: Tensor
    bound: Tensor


def persistent_dual_lagrangian(eps: Tensor, mu: Tensor, hit: Tensor,
                               fp: Tensor, n_pos: Tensor, n_bar: Tensor,
                               beta: float = 1.0,
                               metric: str = 'iou'
                               ) -> PersistentDualLagrangian:
    r"""Class-level Lagrangian of the LP normalised per positive.

    .. math::

        L_c = b^2 \epsilon_c + \frac{fp_c}{\bar n_c}
              + \mu_c\Big(1 - \frac{hit_c}{n_c}\Big),\quad
        hit_c = \sum_{S^+_c} w_i \min(\epsilon_c, f_{ic}),\quad
        fp_c = \sum_{S^-_c} w_j \max(0, \epsilon_c + f_{jc})

    with ``eps_c`` a primal variable, ``mu_c >= 0`` the persistent dual and
    ``nbar_c`` the running positive count. At a saddle point (slack 0,
    ``nbar = n``) ``L_c = V(f / n)`` and the metric bound is ``1 / L_c``
    (IoU) or ``(1 + b^2) / (1 + L_c)`` (F-beta).

    Args:
        eps, mu, hit, fp, n_pos, n_bar (Tensor): (C,); ``hit``, ``fp`` and
            ``n_pos`` are (global) pixel sums.
        beta (float): F-beta's beta (1 for IoU).
        metric (str): ``'iou'`` or ``'fbeta'``.

    Returns:
        PersistentDualLagrangian: (C,) tensors.

    Reference:
        docs/regularizer_derivation.md, section 12.
    """
    b2 = 1.0 if metric == 'iou' else float(beta)**2
    slack = 1.0 - hit / n_pos.clamp(min=1e-12)
    primal = b2 * eps + fp / n_bar.clamp(min=1e-12)
    value = primal + mu * slack
    bound = 1.0 / primal if metric == 'iou' else (1.0 + b2) / (1.0 + primal)
    return PersistentDualLagrangian(value, primal, slack, bound)


def running_count(count: Tensor, n_pos: Tensor, momentum: float,
                  present: Tensor) -> Tensor:
    r"""Running mean of the positive counts, ``nbar_c``.

    ``nbar <- (1 - m) nbar + m n`` for present classes seen before, ``n`` for
    a class's first batch, unchanged for absent classes.
    """
    new = torch.where(count > 0, (1.0 - momentum) * count + momentum * n_pos,
                      n_pos)
    return torch.where(present, new, count)


def projected_dual_step(dual: Tensor, slack: Tensor, lr: float,
                        active: Optional[Tensor] = None,
                        lower: Optional[float] = 0.0,
                        upper: Optional[float] = None) -> Tensor:
    r"""One projected dual ascent step, ``lambda <- max(l, lambda + lr g)``.

    ``g`` is the constraint slack (``dL/dlambda``, ``> 0``: violated), so
    the dual of a violated constraint grows. ``active`` (bool, shape of
    ``dual``) leaves the other entries unchanged; ``lower=None`` is the
    unconstrained step of an equality constraint's dual; a finite ``upper``
    bounds the dual domain (``[lower, upper]``), as stochastic saddle-point
    methods assume.

    Reference:
        Ravi et al. (AAAI 2020), Algorithm 1; docs/regularizer_derivation.md,
        sections 10 and 12.
    """
    step = lr * slack.to(dual)
    if active is not None:
        step = torch.where(active, step, torch.zeros_like(step))
    out = dual + step
    if lower is None and upper is None:
        return out
    return out.clamp(min=lower, max=upper)
