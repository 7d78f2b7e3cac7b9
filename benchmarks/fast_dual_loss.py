"""Today's ``DualIoULoss`` / ``DualFbetaLoss`` forms on the fast op.

``FastDualMetricLoss`` computes what ``segreg.models.losses.
dual_metric_loss._DualMetricLoss`` computes for ``score='log_odds'``,
``surrogate='hinge'``, ``infeasible='direct'`` and one process (no
torch.distributed), with the per-class sums from
:mod:`segreg.ops.hinge_sums` instead of ``class_scores`` +
``classwise_negative_hinge`` + scatters. Same parameters and buffers
(``log_scale``, ``log_eps``, ``mu``, ``count``), same random subsampling
phase (it draws from torch's global generator in the same order), so the
two give the same loss and gradients (tests/test_ops/test_hinge_sums.py).

It is the wiring example for the loss classes and the fast path of
benchmarks/loss_cost.py; it is not registered (the registered losses own
the configuration surface). Each solver is its own method, chosen once in
``__init__``.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence, Union

import torch
from torch import Tensor, nn

from segreg.ops import (classwise_lp_value, classwise_threshold,
                        hinge_bound_from_counts, lp_metric_bound)
from segreg.ops.hinge_sums import (log_odds_scores, negative_hinge_sums,
                                   positive_hinge_sums)

__all__ = ['FastDualMetricLoss']


class FastDualMetricLoss(nn.Module):
    """The direct bound, the exact LP and the persistent-dual form.

    Args (as ``DualIoULoss``): num_classes, solver ('direct', 'exact',
    'dual_ascent'), sample_stride, learn_scale, init_scale, normalize,
    eta_mu, count_momentum, classes, class_weight, term, term_floor,
    metric ('iou' or 'fbeta'), beta, loss_weight.
    """

    def __init__(self, num_classes: Optional[int] = None,
                 solver: str = 'direct', sample_stride: int = 4,
                 learn_scale: Optional[bool] = None, init_scale: float = 1.0,
                 normalize: str = 'sum', eta_mu: float = 0.01,
                 count_momentum: float = 0.1,
                 classes: Union[str, Sequence[int]] = 'present',
                 class_weight: Optional[Sequence[float]] = None,
                 term: str = 'bound', term_floor: float = 0.05,
                 metric: str = 'iou', beta: float = 1.0,
                 loss_weight: float = 1.0,
                 loss_name: str = 'loss_dual_iou') -> None:
        super().__init__()
        forms = dict(direct=self._direct, exact=self._exact,
                     dual_ascent=self._dual_ascent)
        if solver not in forms:
            raise ValueError(f'solver must be one of {list(forms)}, got '
                             f'{solver!r}')
        if learn_scale is None:
            learn_scale = solver != 'direct'
        self._form = forms[solver]
        self.solver, self.sample_stride = solver, sample_stride
        self.init_scale, self.normalize = float(init_scale), normalize
        self.eta_mu, self.count_momentum = eta_mu, count_momentum
        self.classes, self.term, self.term_floor = classes, term, term_floor
        self.metric = dict(metric=metric, beta=1.0 if metric == 'iou'
                           else float(beta))
        self.loss_weight, self._loss_name = loss_weight, loss_name
        self.log_scale = nn.Parameter(torch.full(
            (num_classes, ), math.log(init_scale))) if learn_scale else None
        if solver == 'dual_ascent':
            self.log_eps = nn.Parameter(torch.zeros(num_classes))
            self.register_buffer('mu', torch.ones(num_classes))
            self.register_buffer('count', torch.zeros(num_classes))
        self.class_weight = None if class_weight is None else \
            torch.as_tensor(class_weight, dtype=torch.float32)

    @property
    def loss_name(self) -> str:
        return self._loss_name

    # -- shared pieces -------------------------------------------------------
    def forward(self, cls_score: Tensor, label: Tensor,
                weight: Optional[Tensor] = None, ignore_index: int = 255,
                **kwargs) -> Tensor:
        if self.sample_stride > 1:
            cls_score, label, weight = self._subsample(cls_score, label,
                                                       weight)
        with torch.autocast(device_type=cls_score.device.type,
                            enabled=False):
            x = cls_score if cls_score.dtype == torch.float64 else \
                cls_score.float()
            B, C = x.shape[:2]
            label = label.reshape(B, *x.shape[2:]).long()
            valid = (label != ignore_index) & (label >= 0) & (label < C)
            lab = torch.where(valid, label, torch.full_like(label, C))
            sc = log_odds_scores(x, lab, weight)
            terms, selected = self._form(sc, C)
            cw = selected.to(x.dtype)
            if self.class_weight is not None:
                cw = cw * self.class_weight.to(cw)
            # keep the parameters in the graph (DDP); unlike today's loss no
            # ``logits.sum() * 0``: the terms depend on the logits already,
            # and that anchor costs a pass and an (N, C) gradient buffer
            anchor = cw.new_zeros(())
            for p in self.parameters():
                anchor = anchor + p.sum() * 0.0
            safe = torch.where(selected, terms, torch.zeros_like(terms))
            loss = (safe * cw).sum() / cw.sum().clamp(min=1e-12) + anchor
            return self.loss_weight * loss

    def _subsample(self, cls_score, label, weight):
        s = self.sample_stride
        H, W = cls_score.shape[-2:]
        oy = int(torch.randint(min(s, H), ()).item()) if H else 0
        ox = int(torch.randint(min(s, W), ()).item()) if W else 0
        cls_score = cls_score[..., oy::s, ox::s].contiguous()
        label = label.reshape(-1, H, W)[..., oy::s, ox::s]
        if weight is None:
            weight = torch.full(label.shape, float(s * s),
                                device=label.device)
        else:
            weight = weight.reshape(-1, H, W)[..., oy::s, ox::s] * (s * s)
        return cls_score, label, weight

    def _scales(self, C: int, ref: Tensor) -> Tensor:
        if self.log_scale is None:
            return ref.new_full((C, ), self.init_scale)
        return self.log_scale.to(ref.dtype).exp()

    def _selected(self, present: Tensor) -> Tensor:
        if self.classes == 'present':
            return present
        if self.classes == 'all':
            return torch.ones_like(present)
        sel = torch.zeros_like(present)
        sel[torch.as_tensor(list(self.classes), device=present.device)] = True
        return sel

    def _term(self, m: Tensor) -> Tensor:
        if self.term == 'bound':
            return 1.0 - m
        m0 = self.term_floor
        safe = m.clamp(min=m0)
        if self.term == 'log':
            main, slope, at_floor = -torch.log(safe), 1.0 / m0, -math.log(m0)
        else:
            main, slope = 1.0 / safe - 1.0, 1.0 / m0**2
            at_floor = 1.0 / m0 - 1.0
        return torch.where(m >= m0, main, at_floor + slope * (m0 - m))

    # -- the forms -------------------------------------------------------------
    def _direct(self, sc, C: int):
        """Hinge bound at threshold 1 and the (constant) scale."""
        n = sc.n_pos
        present = n > 0
        # a constant scale stays a Python float (no per-positive gather)
        w = self.init_scale if self.log_scale is None else \
            self._scales(C, n).detach()
        fp = negative_hinge_sums(sc, 1.0, w)
        tp = positive_hinge_sums(sc, w, 1.0)
        m = torch.where(present, hinge_bound_from_counts(tp, fp, n,
                                                          **self.metric),
                        1.0 / (1.0 + fp))
        return self._term(m), self._selected(present)

    def _exact(self, sc, C: int):
        """The per-batch LP (water-filling threshold), direct bound where
        infeasible."""
        n = sc.n_pos
        present = n > 0
        scales = self._scales(C, n)
        keep = sc.pos_labels < C
        y = torch.where(keep, sc.pos_labels, torch.zeros_like(sc.pos_labels))
        n_det = n.detach()
        lp_factor = torch.where(present, 1.0 / n_det.clamp(min=1e-12),
                                torch.ones_like(n_det)) \
            if self.normalize == 'mean' else torch.ones_like(n_det)
        sum_s = torch.zeros_like(n).index_add(
            0, y, (sc.pos_weight * sc.pos_scores).detach())
        solve = present & (scales.detach() * lp_factor * sum_s >= 1.0)
        w_eff = torch.where(solve, scales, scales.detach())
        w_lp = w_eff * lp_factor
        f_pos = sc.pos_scores * w_lp.index_select(0, y)
        thr = classwise_threshold(f_pos, sc.pos_labels, C, sc.pos_weight)
        feasible = thr.feasible & solve
        eps = torch.where(feasible, thr.eps.clamp(min=0),
                          torch.ones_like(thr.eps))
        fp = negative_hinge_sums(sc, eps, torch.where(feasible, w_lp, w_eff))
        tp = positive_hinge_sums(sc, w_eff, 1.0)
        value = classwise_lp_value(eps, n, fp, feasible, **self.metric)
        m_lp = lp_metric_bound(torch.where(feasible, value,
                                           torch.ones_like(value)),
                               **self.metric)
        m_direct = hinge_bound_from_counts(tp, fp, n, **self.metric)
        m = torch.where(feasible, m_lp, torch.where(present, m_direct,
                                                    1.0 / (1.0 + fp)))
        return self._term(m), self._selected(present)

    def _dual_ascent(self, sc, C: int):
        """Persistent class-level eps_c (trained) and duals mu_c."""
        n = sc.n_pos
        present = n > 0
        b2 = self.metric['beta']**2
        scales = self._scales(C, n)
        w_eff = torch.where(present, scales, scales.detach())
        eps = self.log_eps.to(n.dtype).exp()
        hit = positive_hinge_sums(sc, w_eff, eps)
        fp = negative_hinge_sums(sc, eps, w_eff)
        with torch.no_grad():
            if self.training:
                mom = self.count_momentum
                new = torch.where(self.count > 0,
                                  (1 - mom) * self.count + mom * n, n)
                self.count.copy_(torch.where(present, new, self.count))
            nbar = torch.where(self.count > 0, self.count.to(n), n)
        slack = 1.0 - hit / n.clamp(min=1e-12)
        mu = self.mu.to(n.dtype).clone()
        lag = b2 * eps + fp / nbar.clamp(min=1e-12) + mu * slack
        if self.training and self.eta_mu > 0:
            with torch.no_grad():
                step = torch.where(present, self.eta_mu * slack.detach(),
                                   torch.zeros_like(slack))
                self.mu.copy_((self.mu + step.to(self.mu)).clamp_(min=0))
        return lag, self._selected(present) & present
