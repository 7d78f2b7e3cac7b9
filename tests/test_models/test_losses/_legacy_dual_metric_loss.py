from __future__ import annotations
"""FROZEN ORACLE: segreg's DualIoULoss / DualFbetaLoss before the split into
PixelMetricLoss forms (git history: segreg/models/losses/dual_metric_loss.py
at the commit before "losses: one small class per form"). Not registered;
the oracle of test_legacy_equivalence.py and tests/test_ops/test_hinge_sums.py,
and the ``_old`` rows of benchmarks/loss_cost.py. Do not edit.
"""
"""Pixel-level, class-wise dual-projected IoU / F-beta losses.

For every class ``c`` of a batch the positives are the pixels labelled ``c``
and the negatives all other valid pixels; the scores are
``f_ic = w_c * s_ic`` with ``s`` a per-class logit margin (default: the
log-odds ``log p_c - log(1 - p_c)``) and ``w_c = exp(log_scale_c)`` a
per-class scale (the paper's free last-layer scale). Three solvers of the
reparameterized program of Ravi et al. (AAAI 2020) give the class's metric
lower bound ``m_c`` (docs/losses.md, docs/regularizer_derivation.md):

* ``solver='direct'`` (default): the hinge bound at threshold 1,
  ``tp / (n + fp)`` with ``tp = sum_{S+} min(1, f)``, ``fp = sum_{S-}
  max(0, 1 + f)`` (``tp / n`` when ``tp < 0``): the relaxation at a fixed
  threshold, defined for any scores, no sort.
* ``solver='exact'``: the LP with the per-pixel ``tau`` eliminated, solved
  exactly per batch::

      V_c = min_{eps >= eps_min}  b^2 n_c eps + sum_{j in S-_c} max(0, eps + f_jc)
      eps_min: the smallest eps with sum_{i in S+_c} min(eps, f_ic) >= 1

  ``eps_min`` is a water-filling threshold found by one sort of the
  positives of all classes together; autograd through the closed form gives
  the gradient of the optimal Lagrangian (``lambda_i = dV/df_i`` is non-zero
  exactly for positives below the threshold); ``m_c = 1 / V_c`` (IoU) or
  ``(1 + b^2) / (1 + V_c)`` (F-beta). The LP is infeasible when
  ``sum_{S+} f < 1`` (every class at initialisation, the badly predicted ones
  later; shared/docs/regularizer.md, section 2b); ``infeasible`` chooses what
  such a class contributes (default: the direct bound).
* ``solver='dual_ascent'``: persistent class-level ``eps_c`` / ``mu_c``
  with dual ascent across batches.

The default (direct bound, every 4th pixel) won the issue-7 study on both
CPU datasets; the exact LP with the paper's normalisation let the bound of
feasible classes sit near 0.03 with a vanishing gradient
(docs/experiments.md, derivation section 14).

Under ``torch.distributed`` the positives are all-gathered and the class sums
all-reduced (differentiably), so the metric is taken over the global batch.
"""

import math
from typing import Dict, Optional, Sequence, Tuple, Union

import torch
import torch.distributed as dist
import torch.nn.functional as F

from torch import Tensor, nn

from segreg.ops import (classwise_lp_value, classwise_negative_hinge,
                        classwise_threshold, hinge_bound_from_counts,
                        lp_metric_bound, surrogate)
from segreg.ops.fractional_lp import SURROGATES

__all__ = ['DualIoULoss', 'DualFbetaLoss', 'class_scores']

_SCORES = ('log_odds', 'margin')
_INFEASIBLE = ('direct', 'shift', 'skip')
_TERMS = ('bound', 'log', 'inverse')
_SOLVERS = ('exact', 'dual_ascent', 'direct')
_NORMALIZE = ('sum', 'mean')


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
        zero = torch.zeros((), dtype=grad.dtype, device=grad.device)
        grad = torch.where(live, grad, zero)
        g = torch.expm1(logp)  # p - 1 < 0
        torch.div(grad, g, out=g).neg_()  # g = G / (1 - p)
        # The class with p > 1/2 (at most one per pixel) plays the role of
        # the most probable class: only there is 1 - p small. A mask instead
        # of argmax over dim 1, which is a slow strided reduction on CPU.
        big = logp > -math.log(2.0)
        g_big = torch.where(big, g, zero)
        g_a = g_big.sum(dim=1, keepdim=True)
        rest = g.sub_(g_big).sum(dim=1, keepdim=True)  # sum_{c != a} g_c
        p = logp.exp()
        out = g.sub_(p * (rest + g_a))
        return torch.where(big, grad - p * rest, out), None


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
                 learn_scale: Optional[bool] = None,
                 init_scale: float = 1.0,
                 infeasible: str = 'direct',
                 term: str = 'bound',
                 term_floor: float = 0.05,
                 shift_margin: float = 1.0,
                 surrogate: str = 'hinge',
                 sample_stride: int = 4,
                 solver: str = 'direct',
                 normalize: str = 'sum',
                 eta_mu: float = 0.01,
                 count_momentum: float = 0.1,
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
        if surrogate not in SURROGATES:
            raise ValueError(f'surrogate must be one of {SURROGATES}, got '
                             f'{surrogate!r}')
        if solver not in _SOLVERS:
            raise ValueError(f'solver must be one of {_SOLVERS}, got '
                             f'{solver!r}')
        if solver == 'dual_ascent' and num_classes is None:
            raise ValueError("solver='dual_ascent' keeps per-class duals and "
                             'needs num_classes')
        if normalize not in _NORMALIZE:
            raise ValueError(f'normalize must be one of {_NORMALIZE}, got '
                             f'{normalize!r}')
        if normalize == 'mean' and infeasible == 'shift':
            raise ValueError("infeasible='shift' is defined for "
                             "normalize='sum' only")
        if solver != 'exact' and infeasible != 'direct':
            raise ValueError(f"infeasible={infeasible!r} applies to "
                             f"solver='exact' only, not {solver!r}")
        if not eta_mu >= 0 or not 0 < count_momentum <= 1:
            raise ValueError('need eta_mu >= 0 and 0 < count_momentum <= 1')
        if not (isinstance(sample_stride, int) and sample_stride >= 1):
            raise ValueError('sample_stride must be an int >= 1, got '
                             f'{sample_stride!r}')
        if beta <= 0:
            raise ValueError(f'beta must be positive, got {beta}')
        if init_scale <= 0:
            raise ValueError(f'init_scale must be positive, got {init_scale}')
        if not 0 < term_floor <= 1:
            raise ValueError('term_floor must be in (0, 1]')
        if learn_scale is None:  # the direct bound never trains the scale
            learn_scale = solver != 'direct'
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
        self.surrogate = surrogate
        self.sample_stride = sample_stride
        self.solver = solver
        self.normalize = normalize
        self.eta_mu = float(eta_mu)
        self.count_momentum = float(count_momentum)
        if solver == 'dual_ascent':
            # persistent class-level state: the threshold eps_c (a primal
            # variable, trained by the optimizer), the dual mu_c of the
            # normalised constraint and a running count of the positives;
            # buffers and parameters, so checkpoints and --resume keep them
            self.log_eps = nn.Parameter(torch.zeros(num_classes))
            self.register_buffer('mu', torch.ones(num_classes))
            self.register_buffer('count', torch.zeros(num_classes))
        else:
            self.register_parameter('log_eps', None)
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
        if self.sample_stride > 1:
            cls_score, label, weight = self._subsample(cls_score, label,
                                                       weight)
        with torch.autocast(device_type=cls_score.device.type, enabled=False):
            x = cls_score if cls_score.dtype == torch.float64 else \
                cls_score.float()
            return self.loss_weight * self._forward(x, label, weight,
                                                    ignore_index)

    def _subsample(self, cls_score: Tensor, label: Tensor,
                   weight: Optional[Tensor]
                   ) -> Tuple[Tensor, Tensor, Tensor]:
        """Every ``s``-th pixel in both spatial dims, at a random phase.

        Each pixel is drawn with probability ``1 / s^2`` (the phase comes
        from torch's global generator, which mmengine seeds), and the drawn
        pixels carry weight ``s^2``, so every class sum of the loss is an
        unbiased estimate of the full-resolution one at ``1 / s^2`` of the
        cost. mmseg's decode heads predict at 1/4 (DeepLabV3+) or 1/8
        (DeepLabV3) of the label resolution and upsample bilinearly, so a
        stride up to that factor drops no logit information, only label
        detail.
        """
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

        # the LP's score scale: w_c (normalize='sum': sum_{S+} tau = 1, the
        # paper's) or w_c / n_c ('mean': sum_{S+} tau = n_c; derivation,
        # section 12: the scale no longer depends on the batch's class size)
        n_det = n.detach()
        per_pos = torch.where(present, 1.0 / n_det.clamp(min=1e-12),
                              torch.ones_like(n_det))
        lp_factor = per_pos if self.normalize == 'mean' else \
            torch.ones_like(n_det)
        # feasibility with the current scales: sum_{S+} f >= 1
        sum_s = zeros.scatter_add(0, y_safe, (w_pos * s_pos).detach())
        feasible_now = present & (scales.detach() * lp_factor * sum_s >= 1.0)
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
        if self.solver == 'dual_ascent':
            solve = present
        elif self.solver == 'direct':
            solve = torch.zeros_like(present)  # never the LP
        # infeasible and absent classes do not train the scale
        w_eff = torch.where(solve, scales, scales.detach())
        w_at = w_eff.index_select(0, y_safe)
        shift_at = shift.index_select(0, y_safe)
        w_lp = w_eff * lp_factor
        f_pos = s_pos * w_lp.index_select(0, y_safe) + shift_at

        if self.solver == 'dual_ascent':
            return self._dual_ascent_loss(logits, s, s_pos * w_at, y_safe,
                                          w_pos, n, present, label, valid,
                                          pix_w, scales, distributed)

        # the water-filling threshold of every class: one segmented sort of
        # the (global) positives (segreg.ops.classwise_threshold)
        if self.solver == 'direct':  # no sort: every class at threshold 1
            feasible = solve
            eps = torch.ones_like(zeros)
        else:
            lp_thr = classwise_threshold(f_pos, y_pos, C, w_pos)
            feasible = lp_thr.feasible & solve
            eps = torch.where(feasible, lp_thr.eps.clamp(min=0),
                              torch.ones_like(lp_thr.eps))
        # hinge threshold per class: eps for the LP, 1 for the direct bound
        thr = eps + shift
        # fp_c = sum_{valid, y != c} max(0, w_c s + thr_c)
        #      = w_c * sum max(0, s + thr_c / w_c)   (no scaled copy of s)
        y_neg = torch.where(valid, label, torch.full_like(label, C))
        w_neg = torch.where(feasible, w_lp, w_eff)
        fp = self._negative_part(s, y_neg, thr, w_neg, pix_w)
        if distributed:  # n, tp and the threshold are already global
            fp = _all_reduce_sum(fp)
        # true-positive hinge at threshold 1 (the direct bound, no shift):
        # min(1, f) = 1 - phi(1 - f) for the hinge
        tp = zeros.scatter_add(
            0, y_safe, w_pos * (1.0 - surrogate(1.0 - s_pos * w_at,
                                                self.surrogate)))

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

    def _dual_ascent_loss(self, logits: Tensor, s: Tensor, f_pos: Tensor,
                          y_pos: Tensor, w_pos: Tensor, n: Tensor,
                          present: Tensor, label: Tensor, valid: Tensor,
                          pix_w: Optional[Tensor], scales: Tensor,
                          distributed: bool) -> Tensor:
        """Persistent class-level duals instead of the per-batch solve.

        With the constraint normalised per positive (``mean_{S+} tau = 1``,
        the Charnes-Cooper scale ``t = n / tp``; the learnable scale absorbs
        the factor), class ``c``'s Lagrangian is::

            L_c = b^2 eps_c + fp_c / nbar_c
                  + mu_c (1 - mean_{S+} min(eps_c, f_i)),
            fp_c = sum_{S-} phi(eps_c + f_j)

        ``eps_c = exp(log_eps_c)`` is a primal variable trained by the
        optimizer, ``mu_c >= 0`` the dual, raised after every training
        forward by ``eta_mu`` times the constraint violation (projected dual
        ascent, paper Algorithm 1 with class-level duals), and ``nbar_c`` a
        running mean of the class's positive count (``count_momentum``), so
        rare classes are not normalised by one batch's few pixels. No sort:
        the cost is that of the elementwise passes. At the saddle point
        ``L_c = V_c / n_c`` and the metric bound is ``1 / L_c`` (IoU),
        ``(1 + b^2) / (1 + L_c)`` (F-beta). The class term is ``L_c``
        itself (``term`` and ``infeasible`` do not apply).
        """
        b2 = 1.0 if self._metric == 'iou' else self.beta**2
        C = s.shape[1]
        eps = self.log_eps.to(s.dtype).exp()
        zeros = torch.zeros(C, device=s.device, dtype=s.dtype)
        hit = zeros.scatter_add(
            0, y_pos, w_pos * torch.minimum(f_pos, eps.index_select(0, y_pos)))
        y_neg = torch.where(valid, label, torch.full_like(label, C))
        w_eff = torch.where(present, scales, scales.detach())
        fp = self._negative_part(s, y_neg, eps, w_eff, pix_w)
        if distributed:  # n and hit come from the gathered positives
            fp = _all_reduce_sum(fp)
        with torch.no_grad():
            if self.training:
                mom = self.count_momentum
                new = torch.where(self.count > 0,
                                  (1 - mom) * self.count + mom * n, n)
                self.count.copy_(torch.where(present, new, self.count))
            nbar = torch.where(self.count > 0, self.count.to(n), n)
        n_safe = n.clamp(min=1e-12)
        slack = 1.0 - hit / n_safe
        mu = self.mu.to(s.dtype).clone()  # the ascent below is in place
        primal = b2 * eps + fp / nbar.clamp(min=1e-12)
        lag = primal + mu * slack
        if self.training and self.eta_mu > 0:
            with torch.no_grad():
                step = torch.where(present, self.eta_mu * slack.detach(),
                                   torch.zeros_like(slack))
                self.mu.copy_((self.mu + step.to(self.mu)).clamp_(min=0))
        selected = self._selected(present, C, s.device) & present
        cw = selected.to(s.dtype)
        if self.class_weight is not None:
            cw = cw * self.class_weight.to(cw)
        anchor = logits.sum() * 0.0 + self.log_eps.sum() * 0.0
        if self.log_scale is not None:
            anchor = anchor + self.log_scale.sum() * 0.0
        safe = torch.where(selected, lag, torch.zeros_like(lag))
        loss = (safe * cw).sum() / cw.sum().clamp(min=1e-12) + anchor
        bound = (1.0 / primal if self._metric == 'iou'
                 else (1.0 + b2) / (1.0 + primal))
        feasible = present & (slack <= 0)
        self.last_stats = dict(
            n=n.detach(), eps=torch.where(present, eps,
                                          torch.full_like(eps, math.nan)
                                          ).detach(),
            feasible=feasible.detach(), present=present.detach(),
            bound=bound.detach(), term=lag.detach(), scale=scales.detach(),
            value=(primal * n).detach(), mu=self.mu.detach().clone(),
            slack=slack.detach())
        return loss

    def _negative_part(self, s: Tensor, y_neg: Tensor, thr: Tensor,
                       w_eff: Tensor, pix_w: Optional[Tensor]) -> Tensor:
        """``fp_c = sum_{valid, y != c} phi(w_c s + thr_c)``.

        For the (positively homogeneous) hinge this is ``w_c * sum max(0, s
        + thr_c / w_c)``, which needs no scaled copy of ``s``; the other
        surrogates are evaluated on ``w_c s``.
        """
        if self.surrogate == 'hinge':
            return classwise_negative_hinge(s, y_neg, thr / w_eff,
                                            pix_w) * w_eff
        C = s.shape[1]
        f = s * w_eff.view(1, C, *([1] * (s.dim() - 2)))
        return classwise_negative_hinge(f, y_neg, thr, pix_w,
                                        surrogate=self.surrogate)

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
                f'surrogate={self.surrogate!r}, solver={self.solver!r}, '
                f'normalize={self.normalize!r}, '
                f'sample_stride={self.sample_stride}, '
                f'loss_weight={self.loss_weight}')



class DualIoULoss(_DualMetricLoss):
    """Class-wise dual-projected IoU loss (Ravi et al., AAAI 2020).

    Per class ``c``: ``1 - m_c`` (``term='bound'``) with ``m_c`` a hinge
    lower bound on the class's IoU over the batch, averaged over the
    selected classes and scaled by ``loss_weight``. The defaults are the
    configuration that won the issue-7 study (docs/experiments.md):
    ``solver='direct'`` (the relaxation's hinge bound at threshold 1 for
    every class, no per-batch LP) on every 4th pixel (``sample_stride=4``).
    ``solver='exact'`` is the paper's per-batch LP (``m_c = 1 / V_c``),
    ``'dual_ascent'`` its persistent-dual form. See the module docstring and
    docs/losses.md.

    Args:
        num_classes (int): Number of classes; needed for the learnable
            per-class scales and for ``solver='dual_ascent'``.
        classes (str | list[int]): ``'present'`` (classes with a labelled
            pixel in the (global) batch), ``'all'`` (absent classes add the
            smoothed bound ``1 / (1 + fp_c)``) or a list of classes.
        score (str): ``'log_odds'`` (default) or ``'margin'``; see
            :func:`class_scores`.
        learn_scale (bool, optional): Learn ``log w_c`` (one per class).
            Default: True for ``solver='exact'`` / ``'dual_ascent'``, False
            for ``'direct'`` (whose scale is never trained).
        init_scale (float): Initial (or fixed) scale ``w_c``. Default 1.
        infeasible (str): With ``solver='exact'``, what a class whose LP is
            infeasible (``sum_{S+} f < 1``) contributes: ``'direct'``
            (default) the
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
        surrogate (str): The upper bound ``phi`` of a negative's error and
            ``1 - phi(1 - f)`` of a positive's hit (the paper's Remark 3):
            ``'hinge'`` (default, the LP's ``max(0, t)``), ``'square'``
            (``max(0, t)^2``) or ``'logistic'`` (``log(1 + e^t)``).
        sample_stride (int): Evaluate the loss on every ``s``-th pixel in
            each spatial dim, at a random phase per call, each drawn pixel
            weighted ``s^2`` (unbiased class sums at ``1 / s^2`` of the
            cost). Default 4; 1 is every pixel.
        solver (str): ``'direct'`` (default): no LP, every class uses the
            direct hinge bound at threshold 1 and the current scale (what
            ``'exact'`` does for its infeasible classes; no sort);
            ``'exact'``: the LP of every class solved exactly per batch (one
            segmented sort), the direct bound where it is infeasible;
            ``'dual_ascent'``:
            persistent class-level ``eps_c`` (trained) and duals ``mu_c``
            (dual ascent after each training forward), no sort; see
            :meth:`_DualMetricLoss._dual_ascent_loss`.
        normalize (str): The LP's normalisation of ``solver='exact'``:
            ``'sum'`` (default; the paper's ``sum_{S+} tau = 1``, whose
            implicit score scale is ``1 / eps* ~ n_c``, the class's pixel
            count in the batch) or ``'mean'`` (``sum_{S+} tau = n_c``: the
            LP of ``f / n_c``, whose implicit score scale does not depend on
            the batch's class sizes). See docs/regularizer_derivation.md,
            section 14.
        eta_mu (float): Dual step size of ``solver='dual_ascent'``.
            Default 0.01 (the paper's 1e-5 is per epoch on dataset sums).
        count_momentum (float): Momentum of the running positive counts of
            ``solver='dual_ascent'``. Default 0.1.
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
