"""Pixel-level, class-wise dual-projected IoU / F-beta losses.

For every class ``c`` of a batch the positives are the pixels labelled ``c``
and the negatives all other valid pixels; the scores are
``f_ic = w_c * s_ic`` with ``s`` a per-class logit margin (default: the
log-odds ``log p_c - log(1 - p_c)``) and ``w_c = exp(log_scale_c)`` a
learnable per-class scale (the paper's free last-layer scale). The
reparameterized linear program of Ravi et al. (AAAI 2020), with the per-pixel
``tau`` eliminated, is solved exactly per batch (docs/losses.md,
shared/docs/regularizer.md section 2)::

    V_c = min_{eps >= eps_min}  b^2 n_c eps + sum_{j in S-_c} max(0, eps + f_jc)
    eps_min: the smallest eps with sum_{i in S+_c} min(eps, f_ic) >= 1

``eps_min`` is a water-filling threshold found by one sort of the positives
of all classes together; autograd through the closed form gives the
gradient of the optimal Lagrangian (``lambda_i = dV/df_i`` is non-zero exactly
for positives below the threshold). ``1 / V_c`` is the hinge lower bound on
the class IoU at the LP's score scale ``1 / eps*`` (docs/
regularizer_derivation.md, section 2); for F-beta the bound is
``(1 + b^2) / (1 + V_c)``.

The LP is infeasible when ``sum_{S+} f < 1``; with logit margins that is
every class at initialisation and every badly predicted class later
(shared/docs/regularizer.md, section 2b). ``infeasible`` selects what such a
class contributes; the default ``'direct'`` uses the hinge bound at the
class's current scale and threshold 1, which is defined for any scores and
has a non-zero gradient from the first iteration.

Under ``torch.distributed`` the positives are all-gathered and the class sums
all-reduced (differentiably), so the metric is taken over the global batch.
"""
from __future__ import annotations

import math
from typing import Dict, Optional, Sequence, Tuple, Union

import torch
import torch.distributed as dist
import torch.nn.functional as F
from mmseg.registry import MODELS
from torch import Tensor, nn

from segreg.ops import (classwise_lp_value, classwise_negative_hinge,
                        classwise_threshold, hinge_bound_from_counts,
                        lp_metric_bound)

__all__ = ['DualIoULoss', 'DualFbetaLoss', 'class_scores']

_SCORES = ('log_odds', 'margin')
_INFEASIBLE = ('direct', 'shift', 'skip')
_TERMS = ('bound', 'log', 'inverse')


# ---------------------------------------------------------------------------
# scores
# ---------------------------------------------------------------------------
class _LogOdds(torch.autograd.Function):
    """``s = log p - log(1 - p)`` of a softmax over dim 1, lean in memory.

    Forward keeps one saved tensor (the clamped ``log p``) instead of the
    four of plain autograd. With ``ds_c / dlog p_c = 1 / (1 - p_c)`` the
    backward is log-softmax's with ``g = G / (1 - p)``,
    ``dz_k = g_k - p_k sum_c g_c``, evaluated without cancellation: for the
    most probable class ``a`` of a pixel ``dz_a = G_a - p_a sum_{c != a} g_c``
    (``g_a (1 - p_a) = G_a`` exactly), for the others ``g_a`` enters only
    multiplied by ``p_k <= 1 - p_a``. Entries clamped at ``log p = -tiny``
    (``p`` rounds to 1) get no gradient, as with ``clamp`` under autograd.
    """

    @staticmethod
    def forward(ctx, logits: Tensor, tiny: float) -> Tensor:
        logp = F.log_softmax(logits, dim=1).clamp_(max=-tiny)
        s = torch.expm1(logp).neg_().log_().neg_().add_(logp)
        ctx.tiny = tiny
        ctx.save_for_backward(logp)
        return s

    @staticmethod
    def backward(ctx, grad: Tensor):
        logp, = ctx.saved_tensors
        live = logp < -ctx.tiny  # not clamped
        grad = torch.where(live, grad, torch.zeros((), dtype=grad.dtype,
                                                   device=grad.device))
        g = torch.expm1(logp)  # p - 1 < 0
        torch.div(grad, g, out=g).neg_()  # g = G / (1 - p)
        a = logp.argmax(dim=1, keepdim=True)
        g_a = g.gather(1, a)
        g.scatter_(1, a, 0.0)
        rest = g.sum(dim=1, keepdim=True)  # sum_{c != a} g_c, exactly
        p = logp.exp()
        p_a = p.gather(1, a)
        out = g.sub_(p.mul_(rest + g_a))
        out.scatter_(1, a, grad.gather(1, a) - p_a * rest)
        return out, None


def class_scores(logits: Tensor, kind: str = 'log_odds') -> Tensor:
    """Per-class logit margins ``s_ic`` of a softmax classifier.

    Args:
        logits (Tensor): Shape (B, C, ...), float32 or float64.
        kind (str): ``'log_odds'``: ``log p_c - log(1 - p_c)``
            ``= z_c - logsumexp_{k != c} z_k`` (smooth; gradient to every
            class; saturates at about +16 in float32 where ``p_c`` rounds to
            1, and such entries get no gradient). ``'margin'``:
            ``z_c - max_{k != c} z_k`` (exact, gradient to the class and its
            strongest competitor).

    Returns:
        Tensor: Same shape as ``logits``.
    """
    if kind == 'log_odds':
        tiny = 1e-7 if logits.dtype != torch.float64 else 1e-15
        return _LogOdds.apply(logits, tiny)
    if kind == 'margin':
        if logits.shape[1] < 2:
            raise ValueError('margin scores need at least 2 classes')
        top2 = logits.topk(2, dim=1).values
        first, second = top2[:, :1], top2[:, 1:2]
        return logits - torch.where(logits >= first, second, first)
    raise ValueError(f'unknown score kind {kind!r}; use one of {_SCORES}')


# ---------------------------------------------------------------------------
# distributed helpers (differentiable)
# ---------------------------------------------------------------------------
def _world_size() -> int:
    if dist.is_available() and dist.is_initialized():
        return dist.get_world_size()
    return 1


def _all_reduce_sum(x: Tensor) -> Tensor:
    from torch.distributed.nn.functional import all_reduce
    return all_reduce(x)


def _all_gather_cat(x: Tensor, labels: Tensor, weights: Tensor,
                    pad_label: int) -> Tuple[Tensor, Tensor, Tensor]:
    """Gather variable-length 1-D tensors of every rank (x differentiably)."""
    from torch.distributed.nn.functional import all_gather
    world = dist.get_world_size()
    n = torch.tensor([x.numel()], device=x.device)
    sizes = [torch.zeros_like(n) for _ in range(world)]
    dist.all_gather(sizes, n)
    m = max(1, max(int(s) for s in sizes))
    pad = m - x.numel()
    if pad:
        x = torch.cat([x, x.new_zeros(pad)])
        labels = torch.cat([labels, labels.new_full((pad,), pad_label)])
        weights = torch.cat([weights, weights.new_zeros(pad)])
    xs = torch.cat(all_gather(x))
    ls = [torch.empty_like(labels) for _ in range(world)]
    dist.all_gather(ls, labels.contiguous())
    ws = [torch.empty_like(weights) for _ in range(world)]
    dist.all_gather(ws, weights.contiguous())
    return xs, torch.cat(ls), torch.cat(ws)


# ---------------------------------------------------------------------------
# the loss
# ---------------------------------------------------------------------------
class _DualMetricLoss(nn.Module):
    """Shared machinery of :class:`DualIoULoss` and :class:`DualFbetaLoss`.

    Subclasses fix ``_metric`` (``'iou'`` or ``'fbeta'``) and ``beta``.
    """

    _metric = 'iou'

    def __init__(self,
                 num_classes: Optional[int] = None,
                 beta: float = 1.0,
                 classes: Union[str, Sequence[int]] = 'present',
                 score: str = 'log_odds',
                 learn_scale: bool = True,
                 init_scale: float = 1.0,
                 infeasible: str = 'direct',
                 term: str = 'bound',
                 term_floor: float = 0.05,
                 shift_margin: float = 1.0,
                 class_weight: Optional[Sequence[float]] = None,
                 sync: bool = True,
                 loss_weight: float = 1.0,
                 loss_name: str = 'loss_dual_iou') -> None:
        super().__init__()
        if not (isinstance(classes, str) and classes in ('present', 'all')) \
                and not (isinstance(classes, (list, tuple))
                         and all(isinstance(c, int) for c in classes)):
            raise ValueError("classes must be 'present', 'all' or a list of "
                             f'class indices, got {classes!r}')
        if score not in _SCORES:
            raise ValueError(f'score must be one of {_SCORES}, got {score!r}')
        if infeasible not in _INFEASIBLE:
            raise ValueError(f'infeasible must be one of {_INFEASIBLE}, got '
                             f'{infeasible!r}')
        if term not in _TERMS:
            raise ValueError(f'term must be one of {_TERMS}, got {term!r}')
        if beta <= 0:
            raise ValueError(f'beta must be positive, got {beta}')
        if init_scale <= 0:
            raise ValueError(f'init_scale must be positive, got {init_scale}')
        if not 0 < term_floor <= 1:
            raise ValueError('term_floor must be in (0, 1]')
        if learn_scale and num_classes is None:
            raise ValueError(
                f'{type(self).__name__} learns one scale per class and needs '
                'num_classes (set it to the decode head\'s num_classes), or '
                'pass learn_scale=False')
        self.num_classes = num_classes
        self.beta = float(beta)
        self.classes = classes
        self.score = score
        self.learn_scale = learn_scale
        self.init_scale = float(init_scale)
        self.infeasible = infeasible
        self.term = term
        self.term_floor = float(term_floor)
        self.shift_margin = float(shift_margin)
        self.sync = sync
        self.loss_weight = loss_weight
        self._loss_name = loss_name
        if learn_scale:
            self.log_scale = nn.Parameter(
                torch.full((num_classes, ), math.log(init_scale)))
        else:
            self.register_parameter('log_scale', None)
        if class_weight is not None:
            self.register_buffer(
                'class_weight',
                torch.as_tensor(class_weight, dtype=torch.float32),
                persistent=False)
        else:
            self.class_weight = None
        #: detached statistics of the last forward (read by DualAscentHook)
        self.last_stats: Dict[str, Tensor] = {}

    # -- metric-specific pieces ---------------------------------------------
    @property
    def _ops_metric(self) -> dict:
        """``metric`` / ``beta`` keywords of the segreg.ops functions."""
        if self._metric == 'iou':
            return dict(metric='iou', beta=1.0)
        return dict(metric='fbeta', beta=self.beta)

    def _term(self, m: Tensor) -> Tensor:
        """Per-class loss term from the metric bound ``m`` (<= 1)."""
        if self.term == 'bound':
            return 1.0 - m
        m0 = self.term_floor
        safe = m.clamp(min=m0)
        if self.term == 'log':
            main, slope = -torch.log(safe), 1.0 / m0
            at_floor = -math.log(m0)
        else:  # inverse: 1/m - 1 (the LP value V - 1 for IoU)
            main, slope = 1.0 / safe - 1.0, 1.0 / m0**2
            at_floor = 1.0 / m0 - 1.0
        ext = at_floor + slope * (m0 - m)  # C1 linear extension below m0
        return torch.where(m >= m0, main, ext)

    # -- forward --------------------------------------------------------------
    def forward(self,
                cls_score: Tensor,
                label: Tensor,
                weight: Optional[Tensor] = None,
                ignore_index: int = 255,
                **kwargs) -> Tensor:
        """The loss of one batch.

        Args:
            cls_score (Tensor): Logits, shape (B, C, H, W) (any trailing
                spatial shape).
            label (Tensor): Shape (B, H, W), class indices or
                ``ignore_index``.
            weight (Tensor, optional): Shape (B, H, W) per-pixel weights
                (e.g. from a pixel sampler); pixels with weight 0 are left
                out, other weights scale the pixel's counts.
            ignore_index (int): Label of pixels left out. Default 255.

        Returns:
            Tensor: Scalar loss, ``loss_weight * mean over classes``.
        """
        with torch.autocast(device_type=cls_score.device.type, enabled=False):
            x = cls_score if cls_score.dtype == torch.float64 else \
                cls_score.float()
            return self.loss_weight * self._forward(x, label, weight,
                                                    ignore_index)

    def _scales(self, C: int, ref: Tensor) -> Tensor:
        if self.log_scale is None:
            return ref.new_full((C, ), self.init_scale)
        if self.log_scale.numel() != C:
            raise ValueError(f'{type(self).__name__} has num_classes='
                             f'{self.log_scale.numel()} but got logits with '
                             f'{C} classes')
        return self.log_scale.to(ref.dtype).exp()

    def _forward(self, logits: Tensor, label: Tensor,
                 weight: Optional[Tensor], ignore_index: int) -> Tensor:
        if logits.numel() == 0:
            # an empty batch: one image of no pixels (the sums are empty; under
            # DDP this rank still joins the collectives)
            C = logits.shape[1]
            logits = logits.reshape(1, C, 0)
            label = label.reshape(1, 0)
            weight = None if weight is None else weight.reshape(1, 0)
        B, C = logits.shape[:2]
        dev = logits.device
        scales = self._scales(C, logits)
        label = label.reshape(B, *logits.shape[2:]).long()
        valid = (label != ignore_index) & (label >= 0) & (label < C)
        if weight is not None:
            weight = weight.reshape(label.shape).to(logits.dtype)
            valid = valid & (weight > 0)
        pidx = valid.reshape(-1).nonzero().squeeze(1)  # positive pixels
        all_valid = pidx.numel() == label.numel()
        pix_w = None  # None: every pixel counts with weight 1
        if weight is not None:
            pix_w = torch.where(valid, weight, torch.zeros_like(weight))
        elif not all_valid:
            pix_w = valid.to(logits.dtype)
        s = class_scores(logits, self.score)  # (B, C, ...)
        lab = torch.where(valid, label, torch.zeros_like(label))
        s_pos = s.gather(1, lab.unsqueeze(1)).reshape(-1).index_select(0, pidx)
        y_pos = label.reshape(-1).index_select(0, pidx)
        w_pos = (pix_w.reshape(-1).index_select(0, pidx) if pix_w is not None
                 else torch.ones_like(s_pos))
        distributed = self.sync and _world_size() > 1
        if distributed:
            s_pos, y_pos, w_pos = _all_gather_cat(s_pos, y_pos, w_pos, C)
        keep = y_pos < C
        y_safe = torch.where(keep, y_pos, torch.zeros_like(y_pos))
        w_pos = torch.where(keep, w_pos, torch.zeros_like(w_pos))
        zeros = torch.zeros(C, device=dev, dtype=logits.dtype)
        n = zeros.scatter_add(0, y_safe, w_pos)  # positive counts (global)
        present = n > 0

        # feasibility with the current scales: sum_{S+} w_c s >= 1
        sum_s = zeros.scatter_add(0, y_safe, (w_pos * s_pos).detach())
        feasible_now = present & (scales.detach() * sum_s >= 1.0)
        shift = zeros
        if self.infeasible == 'shift':
            # move class c's scores by a constant so that sum_{S+} f >= 1
            need = present & ~feasible_now
            delta = (1.0 - scales.detach() * sum_s) / n.clamp(min=1e-12) \
                + self.shift_margin
            shift = torch.where(need, delta, zeros).detach()
            solve = present
        else:
            solve = feasible_now
        # infeasible and absent classes do not train the scale
        w_eff = torch.where(solve, scales, scales.detach())
        w_at = w_eff.index_select(0, y_safe)
        shift_at = shift.index_select(0, y_safe)
        f_pos = s_pos * w_at + shift_at

        # the water-filling threshold of every class: one segmented sort of
        # the (global) positives (segreg.ops.classwise_threshold)
        lp_thr = classwise_threshold(f_pos, y_pos, C, w_pos)
        feasible = lp_thr.feasible & solve
        eps = torch.where(feasible, lp_thr.eps.clamp(min=0),
                          torch.ones_like(lp_thr.eps))
        # hinge threshold per class: eps for the LP, 1 for the direct bound
        thr = eps + shift
        # fp_c = sum_{valid, y != c} max(0, w_c s + thr_c)
        #      = w_c * sum max(0, s + thr_c / w_c)   (no scaled copy of s)
        y_neg = torch.where(valid, label, torch.full_like(label, C))
        fp = classwise_negative_hinge(s, y_neg, thr / w_eff,
                                      pix_w) * w_eff
        if distributed:  # n, tp and the threshold are already global
            fp = _all_reduce_sum(fp)
        # true-positive hinge at threshold 1 (the direct bound, no shift)
        tp = zeros.scatter_add(
            0, y_safe, w_pos * torch.clamp(s_pos * w_at, max=1.0))

        value = classwise_lp_value(eps, n, fp, feasible, **self._ops_metric)
        safe_value = torch.where(feasible, value, torch.ones_like(value))
        m_lp = lp_metric_bound(safe_value, **self._ops_metric)
        m_direct = hinge_bound_from_counts(tp, fp, n, **self._ops_metric)
        m_absent = 1.0 / (1.0 + fp)  # Laplace-smoothed bound, n = 0
        m = torch.where(feasible, m_lp,
                        torch.where(present, m_direct, m_absent))
        terms = self._term(m)

        selected = self._selected(present, C, dev)
        if self.infeasible == 'skip':
            selected = selected & (feasible | ~present)
        cw = selected.to(logits.dtype)
        if self.class_weight is not None:
            cw = cw * self.class_weight.to(cw)
        denom = cw.sum()
        # keep every parameter in the graph (DDP) even when nothing counts
        anchor = logits.sum() * 0.0
        if self.log_scale is not None:
            anchor = anchor + self.log_scale.sum() * 0.0
        safe_terms = torch.where(selected, terms, torch.zeros_like(terms))
        loss = (safe_terms * cw).sum() / denom.clamp(min=1e-12) + anchor
        nan = torch.full_like(eps, float('nan'))
        self.last_stats = dict(
            n=n.detach(), eps=torch.where(feasible, eps, nan).detach(),
            feasible=feasible.detach(), present=present.detach(),
            bound=m.detach(), term=terms.detach(), scale=scales.detach(),
            value=torch.where(feasible, value, nan).detach())
        return loss

    def _selected(self, present: Tensor, C: int,
                  device: torch.device) -> Tensor:
        if self.classes == 'present':
            return present
        if self.classes == 'all':
            return torch.ones(C, dtype=torch.bool, device=device)
        sel = torch.zeros(C, dtype=torch.bool, device=device)
        idx = torch.as_tensor(list(self.classes), dtype=torch.long)
        sel[idx.to(device)] = True
        return sel

    @property
    def loss_name(self) -> str:
        """Name of the loss item (mmseg sums items whose name has 'loss')."""
        return self._loss_name

    def extra_repr(self) -> str:
        return (f'num_classes={self.num_classes}, beta={self.beta}, '
                f'classes={self.classes!r}, score={self.score!r}, '
                f'learn_scale={self.learn_scale}, '
                f'infeasible={self.infeasible!r}, term={self.term!r}, '
                f'loss_weight={self.loss_weight}')


@MODELS.register_module()
class DualIoULoss(_DualMetricLoss):
    """Class-wise dual-projected IoU loss (Ravi et al., AAAI 2020).

    Per class ``c``: ``1 - m_c`` (``term='bound'``) with ``m_c = 1 / V_c``
    the hinge lower bound on the IoU from the exact LP value ``V_c`` of the
    batch; averaged over the selected classes and scaled by ``loss_weight``.
    See the module docstring and docs/losses.md.

    Args:
        num_classes (int): Number of classes; needed for the learnable
            per-class scales (``learn_scale=True``).
        classes (str | list[int]): ``'present'`` (classes with a labelled
            pixel in the (global) batch), ``'all'`` (absent classes add the
            smoothed bound ``1 / (1 + fp_c)``) or a list of classes.
        score (str): ``'log_odds'`` (default) or ``'margin'``; see
            :func:`class_scores`.
        learn_scale (bool): Learn ``log w_c`` (one per class). Default True.
        init_scale (float): Initial (or fixed) scale ``w_c``. Default 1.
        infeasible (str): What a class whose LP is infeasible
            (``sum_{S+} f < 1``) contributes: ``'direct'`` (default) the
            hinge bound ``tp / (n + fp)`` at threshold 1 and the current
            scale (``tp / n`` when ``tp < 0``); ``'shift'``: shift the class's
            scores by a constant (no gradient) so that the LP is feasible and
            solve it; ``'skip'``: leave the class out (the first prototype).
        term (str): Per-class term from the bound ``m``: ``'bound'``
            (``1 - m``, default), ``'log'`` (``-log m``) or ``'inverse'``
            (``1/m - 1``, the LP value minus 1), the last two continued
            linearly below ``term_floor``.
        term_floor (float): See ``term``. Default 0.05.
        shift_margin (float): Mean positive score above ``1/n`` after the
            ``'shift'``. Default 1.
        class_weight (list[float], optional): Weights of the class terms.
        sync (bool): All-reduce the class sums under torch.distributed.
        loss_weight (float): Multiplier of the loss. Default 1.
        loss_name (str): Default ``'loss_dual_iou'``.

    Shape:
        cls_score (B, C, H, W); label (B, H, W); weight (B, H, W) or None.

    Reference:
        Ravi, Venkatesh, Fung, Singh. Optimizing Nondecomposable Data
        Dependent Regularizers via Lagrangian Reparameterization offers
        Significant Performance and Efficiency Gains. AAAI 2020.
    """

    _metric = 'iou'

    def __init__(self, num_classes: Optional[int] = None,
                 loss_name: str = 'loss_dual_iou', **kwargs) -> None:
        if 'beta' in kwargs:
            raise TypeError('DualIoULoss has no beta; use DualFbetaLoss')
        super().__init__(num_classes=num_classes, beta=1.0,
                         loss_name=loss_name, **kwargs)


@MODELS.register_module()
class DualFbetaLoss(_DualMetricLoss):
    """Class-wise dual-projected F-beta loss (Ravi et al., AAAI 2020).

    As :class:`DualIoULoss` with the F-beta bound
    ``m_c = (1 + beta^2) / (1 + V_c)``, ``V_c`` the LP value with the
    ``beta^2 n_c eps`` term.

    Args:
        beta (float): The F-beta parameter (recall weighted beta times as
            much as precision). Default 1.
        **kwargs: As :class:`DualIoULoss`; ``loss_name`` defaults to
            ``'loss_dual_fbeta'``.
    """

    _metric = 'fbeta'

    def __init__(self, num_classes: Optional[int] = None, beta: float = 1.0,
                 loss_name: str = 'loss_dual_fbeta', **kwargs) -> None:
        super().__init__(num_classes=num_classes, beta=beta,
                         loss_name=loss_name, **kwargs)
