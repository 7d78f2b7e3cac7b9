"""``PixelMetricLoss``: what every pixel-level metric regularizer shares.

A subclass implements one method, :meth:`PixelMetricLoss.class_terms`,
which gets the masked batch (:class:`PixelBatch`) and returns one term per
class (:class:`ClassTerms`); the base does the rest: pixel subsampling,
float32 outside autocast, ignore and weight masks, the guard against
non-finite logits, class selection and class weights, the mean over the
selected classes, the keep-in-graph anchor (DDP), ``last_stats`` and the
dual-step protocol of losses that keep dual variables. The recipe: docs/
losses.md, "Adding a regularizer".
"""
from __future__ import annotations

from typing import Dict, NamedTuple, Optional, Sequence, Union

import torch
from torch import Tensor, nn

from segreg.ops.soft_jaccard import strided_pixels
from segreg.utils.dist import world_size

__all__ = ['PixelMetricLoss', 'PixelBatch', 'ClassTerms', 'check_metric',
           'finite_or_raise']


class PixelBatch(NamedTuple):
    """The batch a subclass sees (after subsampling and masking).

    Attributes:
        logits (Tensor): (B, C, ...) float32 (float64 stays float64).
        labels (Tensor): (B, ...) long; ignored pixels hold ``C``.
        weight (Tensor | None): (B, ...) pixel weights, 0 at ignored pixels;
            None when every pixel is valid with weight 1.
        sync (bool): Reduce class sums over ranks (torch.distributed is up
            and the loss has ``sync=True``): use
            :func:`segreg.utils.dist.all_reduce_sum`.
    """
    logits: Tensor
    labels: Tensor
    weight: Optional[Tensor]
    sync: bool


class ClassTerms(NamedTuple):
    """What :meth:`PixelMetricLoss.class_terms` returns.

    Attributes:
        term (Tensor): (C,) per-class loss terms (finite where eligible).
        present (Tensor): (C,) bool, the class has positives (global batch).
        eligible (Tensor | None): (C,) bool, classes that may count at all
            (None: every class); ANDed with the ``classes`` selection.
        stats (dict): Detached per-class tensors for ``last_stats``.
    """
    term: Tensor
    present: Tensor
    eligible: Optional[Tensor] = None
    stats: Optional[Dict[str, Tensor]] = None


class PixelMetricLoss(nn.Module):
    """Base of the pixel-level, class-wise metric regularizers.

    Args:
        num_classes (int, optional): Channels of the logits (checked).
        classes (str | list[int]): Classes averaged: ``'present'``
            (classes with a labelled pixel in the global batch), ``'all'``
            or a list of class indices.
        class_weight (list[float], optional): Weights of the class terms.
        sample_stride (int): Use every ``s``-th pixel in each spatial dim at
            a random phase, each weighted ``s^2`` (unbiased class sums at
            ``1/s^2`` of the cost; docs/regularizer_derivation.md, 13).
        sync (bool): Global-batch statistics under torch.distributed.
        nonfinite (str): Non-finite logits: ``'error'`` (default) raises
            naming the loss and the count; ``'skip'`` returns a zero loss
            (still in the graph), changes no state and counts the batch in
            ``num_skipped``.
        loss_weight (float): Multiplier of the loss.
        loss_name (str): Name of the loss item.
    """

    #: True for losses with dual variables: DualAscentHook calls
    #: :meth:`dual_step` after every training iteration.
    has_duals = False

    def __init__(self,
                 num_classes: Optional[int] = None,
                 classes: Union[str, Sequence[int]] = 'present',
                 class_weight: Optional[Sequence[float]] = None,
                 sample_stride: int = 4,
                 sync: bool = True,
                 nonfinite: str = 'error',
                 loss_weight: float = 1.0,
                 loss_name: str = 'loss_pixel_metric') -> None:
        super().__init__()
        name = type(self).__name__
        if not (classes in ('present', 'all') or (
                isinstance(classes, (list, tuple))
                and all(isinstance(c, int) for c in classes))):
            raise ValueError(f"{name}: classes must be 'present', 'all' or a "
                             f'list of class indices, got {classes!r}')
        if not (isinstance(sample_stride, int) and sample_stride >= 1):
            raise ValueError(f'{name}: sample_stride must be an int >= 1, '
                             f'got {sample_stride!r}')
        if nonfinite not in ('error', 'skip'):
            raise ValueError(f"{name}: nonfinite must be 'error' or 'skip', "
                             f'got {nonfinite!r}')
        self.num_classes = num_classes
        self.classes = classes if isinstance(classes, str) else list(classes)
        self.sample_stride = sample_stride
        self.sync = sync
        self.nonfinite = nonfinite
        self.loss_weight = loss_weight
        self._loss_name = loss_name
        self.register_buffer(
            'class_weight', None if class_weight is None else
            torch.as_tensor(class_weight, dtype=torch.float32),
            persistent=False)
        #: batches skipped for non-finite logits (``nonfinite='skip'``)
        self.num_skipped = 0
        #: detached statistics of the last forward (logged by the hook)
        self.last_stats: Dict[str, Tensor] = {}
        self._pending_dual = None  # (slack, active) of the last forward

    @property
    def loss_name(self) -> str:
        """Name of the loss item (mmseg sums items whose name has 'loss')."""
        return self._loss_name

    # -- what a subclass implements -------------------------------------------
    def class_terms(self, batch: PixelBatch) -> ClassTerms:
        """Per-class terms of the masked batch (see :class:`ClassTerms`)."""
        raise NotImplementedError

    def _dual_update(self, slack: Tensor, active: Tensor) -> None:
        """Losses with ``has_duals``: the dual step from the stored slack."""
        raise NotImplementedError

    # -- dual-step protocol ---------------------------------------------------
    def defer_dual_step(self, slack: Tensor, active: Tensor) -> None:
        """Remember a training forward's constraint slack for the dual step."""
        if self.training:
            self._pending_dual = (slack.detach(), active.detach())

    @torch.no_grad()
    def dual_step(self) -> None:
        """Apply the pending dual step: DualAscentHook calls it after every
        training iteration; without the hook the next training forward does
        (the same sequence). No-op without one; a non-finite slack leaves the
        duals unchanged (counted)."""
        pending, self._pending_dual = self._pending_dual, None
        if pending is None:
            return
        slack, active = pending
        if not bool(torch.isfinite(slack[active]).all()):
            self.num_skipped += 1
            return
        self._dual_update(slack, active)

    # -- forward --------------------------------------------------------------
    def forward(self, cls_score: Tensor, label: Tensor,
                weight: Optional[Tensor] = None, ignore_index: int = 255,
                **kwargs) -> Tensor:
        """``loss_weight * mean`` of the selected classes' terms.

        Args:
            cls_score (Tensor): Logits (B, C, H, W) (any trailing shape).
            label (Tensor): (B, H, W) class indices or ``ignore_index``.
            weight (Tensor, optional): (B, H, W) pixel weights.
            ignore_index (int): Label of pixels left out. Default 255.
        """
        name = f'{type(self).__name__} ({self.loss_name})'
        if self.training and self._pending_dual is not None:
            # no DualAscentHook (a plain loop): the step of the previous
            # iteration, before this forward, as the hook would have taken it
            self.dual_step()
        C = cls_score.shape[1]
        if self.num_classes is not None and C != self.num_classes:
            raise ValueError(f'{name} has num_classes={self.num_classes} '
                             f'but got logits with {C} classes')
        if not finite_or_raise(name, cls_score, self.nonfinite):
            self.num_skipped += 1
            return self._anchor(cls_score.nan_to_num(0.0, 0.0, 0.0))
        B = cls_score.shape[0]
        spatial = cls_score.shape[2:]
        label = label.reshape(B, *spatial)
        if weight is not None:
            weight = weight.reshape(B, *spatial)
        if self.sample_stride > 1 and len(spatial) >= 2:
            cls_score, label, weight = self._subsample(cls_score, label,
                                                       weight)
        with torch.autocast(device_type=cls_score.device.type, enabled=False):
            x = cls_score if cls_score.dtype == torch.float64 else \
                cls_score.float()
            return self.loss_weight * self._reduce(
                x, self._batch(x, label, weight, ignore_index))

    def _subsample(self, x: Tensor, label: Tensor, weight: Optional[Tensor]):
        """Every ``s``-th pixel of both spatial dims at a random phase (from
        torch's global generator, which mmengine seeds), weighted ``s^2``."""
        x, label, weight = strided_pixels(x, label, weight,
                                          self.sample_stride)
        return x.contiguous(), label, weight

    def _batch(self, x: Tensor, label: Tensor, weight: Optional[Tensor],
               ignore_index: int) -> PixelBatch:
        C = x.shape[1]
        label = label.long()
        # in [0, C) iff clamping keeps it: one comparison fewer
        valid = label.clamp(0, C - 1) == label
        if 0 <= ignore_index < C:  # else the range test has removed it
            valid &= label != ignore_index
        if weight is not None:
            weight = weight.to(x.dtype)
            valid = valid & (weight > 0)
            weight = torch.where(valid, weight, torch.zeros_like(weight))
        elif not bool(valid.all()):
            weight = valid.to(x.dtype)
        labels = torch.where(valid, label, C)
        return PixelBatch(x, labels, weight, self.sync and world_size() > 1)

    def _param_anchor(self, loss_like: Tensor) -> Tensor:
        """0 with every parameter of the loss in the graph (DDP needs a
        gradient, possibly 0, for each parameter on every rank)."""
        anchor = loss_like.new_zeros(())
        for p in self.parameters():
            anchor = anchor + p.sum() * 0.0
        return anchor

    def _anchor(self, x: Tensor) -> Tensor:
        """0 with the input and every parameter in the graph (the loss of a
        skipped batch)."""
        return x.sum() * 0.0 + self._param_anchor(x)

    def _selected(self, present: Tensor) -> Tensor:
        if self.classes == 'present':
            return present
        if self.classes == 'all':
            return torch.ones_like(present)
        sel = torch.zeros_like(present)
        sel[torch.as_tensor(self.classes, device=present.device)] = True
        return sel

    def _reduce(self, x: Tensor, batch: PixelBatch) -> Tensor:
        out = self.class_terms(batch)
        selected = self._selected(out.present)
        if out.eligible is not None:
            selected = selected & out.eligible
        cw = selected.to(out.term.dtype)
        if self.class_weight is not None:
            cw = cw * self.class_weight.to(cw)
        terms = torch.where(selected, out.term, torch.zeros_like(out.term))
        loss = (terms * cw).sum() / cw.sum().clamp(min=1e-12) + \
            self._param_anchor(loss_like=cw)
        if x.requires_grad and not loss.requires_grad:
            # terms that do not depend on the logits (e.g. no targeted class
            # in the batch): keep the logits in the graph. Otherwise no
            # ``logits.sum() * 0``: it costs a pass and an (N, C) gradient
            # accumulation for nothing
            loss = loss + x.sum() * 0.0
        if self._pending_dual is not None and not bool(torch.isfinite(loss)):
            self._pending_dual = None  # never a dual step from such a batch
            self.num_skipped += 1
        self.last_stats = dict(out.stats or {}, term=out.term.detach(),
                               present=out.present.detach())
        return loss

    def extra_repr(self) -> str:
        return (f'num_classes={self.num_classes}, classes={self.classes!r}, '
                f'sample_stride={self.sample_stride}, '
                f'loss_weight={self.loss_weight}')


def check_metric(metric: str, beta: float):
    """``(metric, beta)`` of the IoU / F-beta forms, validated."""
    if metric not in ('iou', 'fbeta'):
        raise ValueError(f"metric must be 'iou' or 'fbeta', got {metric!r}")
    if metric == 'iou' and beta != 1.0:
        raise TypeError('DualIoULoss has no beta; use DualFbetaLoss')
    if not beta > 0:
        raise ValueError(f'beta must be positive, got {beta}')
    return metric, float(beta)


def finite_or_raise(name: str, logits: Tensor, mode: str = 'error') -> bool:
    """True if every logit is finite; else raise (``mode='error'``) naming
    the loss and the count of bad values, or return False (``'skip'``)."""
    # one read pass: a NaN or inf logit makes the sum NaN or inf (isfinite
    # + all would write an (N, C) mask first); only then count them, since
    # the sum of finite logits can overflow
    if bool(torch.isfinite(logits.sum())):
        return True
    bad = int((~torch.isfinite(logits)).sum())
    if bad == 0:
        return True
    if mode == 'error':
        raise FloatingPointError(
            f'{name}: {bad} of {logits.numel()} logits are NaN or inf; '
            'lower the learning rate or check the inputs, or set '
            "nonfinite='skip' in the loss config to skip such batches")
    return False
