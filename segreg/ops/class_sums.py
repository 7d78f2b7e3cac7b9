r"""Per-class sums and gathers over segmented labels, spread over lanes.

Every pixel form reduces a batch to per-class sums

.. math::

    T_c = \sum_{i: y_i = c} v_i ,

and gathers per-class values back to the pixels, ``t_{y_i}`` (whose
backward is again a per-class sum). ``zeros(C).index_add_(0, y, v)`` is the
plain way, and on CPU it is slow exactly on segmentation labels: runs of
equal labels (a blob, a sorted batch) make one long chain of dependent
read-add-write steps on the same bin, so each add waits for the previous
one. Measured on 73 728 entries (8 x 96 x 96) and 12 classes, one thread:
258 us with blob labels against 105 us with random labels (docs/
loss_cost.md, "Where the time goes").

Here consecutive entries go to different bins: entry ``i`` adds into bin
``L y_i + (i mod L)`` of ``C L`` bins (``L`` = :data:`LANES`), and the
lanes of a class are summed at the end (``view(C, L).sum(1)``), so a run
of one label spreads over ``L`` independent chains. 62 us on the same
input. The sum is the same up to float rounding (another summation order).

:func:`class_sum` and :func:`class_gather` are each other's backward, so
both directions of autograd use the laned form (autograd's own backward of
``index_select`` is a plain ``index_add``). Build the index once per batch
with :func:`class_index` and pass it to every sum and gather of the step.

Why by hand: ``torch.bincount``, ``index_add``, ``scatter_add`` and
``scatter_reduce`` all take the chained path on CPU (bincount with weights
measured 318 us on blob labels); no library spreads a segmented sum over
lanes.
"""
from __future__ import annotations

import functools
from typing import NamedTuple, Sequence

import torch
from torch import Tensor

__all__ = ['LANES', 'ClassIndex', 'class_index', 'class_sum', 'class_gather',
           'split_class_sums']

#: lanes per class: 8 measured best (4: 71 us, 8: 62 us, 16: 60 us on the
#: input of the module docstring; more lanes only cost bins)
LANES = 8


class ClassIndex(NamedTuple):
    """Labels of a batch in the forms :func:`class_sum` needs.

    Attributes:
        labels (Tensor): (N,) long, the bin of every entry, in
            ``[0, bins)``.
        laned (Tensor): (N,) long, ``LANES * labels + (i mod LANES)``.
        bins (int): Number of classes (bins) of the sums.
    """
    labels: Tensor
    laned: Tensor
    bins: int


@functools.lru_cache(maxsize=8)
def _lane_offsets(n: int, device: torch.device) -> Tensor:
    """(n,) ``i mod LANES`` (read-only; cached: every step of a training run
    asks for the same one)."""
    return torch.arange(n, device=device).remainder_(LANES)


def class_index(labels: Tensor, bins: int) -> ClassIndex:
    """The :class:`ClassIndex` of ``labels`` (flattened).

    Args:
        labels (Tensor): Any shape, integer values in ``[0, bins)`` (not
            checked: the caller clamps or remaps ignored entries).
        bins (int): Number of classes of the sums.

    Returns:
        ClassIndex: one pass over the labels (the lane offsets are cached).
    """
    y = labels.reshape(-1).long()
    laned = torch.add(_lane_offsets(y.numel(), y.device), y, alpha=LANES)
    return ClassIndex(y, laned, int(bins))


def _laned_sum(v: Tensor, laned: Tensor, bins: int) -> Tensor:
    """(bins,) ``sum_{laned_i // LANES = c} v_i`` through ``bins * LANES``
    bins (no autograd)."""
    out = v.new_zeros(bins * LANES)
    out.scatter_add_(0, laned, v)
    return out.view(bins, LANES).sum(1)


class _ClassSum(torch.autograd.Function):

    @staticmethod
    def forward(ctx, v: Tensor, index: ClassIndex) -> Tensor:
        ctx.labels = index.labels
        return _laned_sum(v, index.laned, index.bins)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g: Tensor):
        return g.index_select(0, ctx.labels), None


class _ClassGather(torch.autograd.Function):

    @staticmethod
    def forward(ctx, table: Tensor, index: ClassIndex) -> Tensor:
        ctx.index = index
        return table.index_select(0, index.labels)

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g: Tensor):
        return _laned_sum(g, ctx.index.laned, ctx.index.bins), None


def class_sum(values: Tensor, index: ClassIndex) -> Tensor:
    r"""``T_c = sum_{y_i = c} v_i`` for every class (differentiable).

    Args:
        values (Tensor): (N,) entries, aligned with ``index.labels``.
        index (ClassIndex): From :func:`class_index`.

    Returns:
        Tensor: (bins,) in ``values``' dtype; its backward is the gather
        ``g_{y_i}``.
    """
    if values.requires_grad:
        return _ClassSum.apply(values, index)
    return _laned_sum(values, index.laned, index.bins)


def class_gather(table: Tensor, index: ClassIndex) -> Tensor:
    r"""``t_{y_i}`` for every entry (differentiable).

    Args:
        table (Tensor): (bins,) per-class values.
        index (ClassIndex): From :func:`class_index`.

    Returns:
        Tensor: (N,); its backward is the laned :func:`class_sum`.
    """
    if table.requires_grad:
        return _ClassGather.apply(table, index)
    return table.index_select(0, index.labels)


def split_class_sums(values: Sequence[Tensor], index: ClassIndex,
                     mask: Tensor) -> Tensor:
    r"""Per-class sums over the entries outside and inside ``mask``.

    .. math::

        out_{v, 0, c} = \sum_{y_i = c,\ \lnot m_i} v_i ,\qquad
        out_{v, 1, c} = \sum_{y_i = c,\ m_i} v_i

    The mask moves an entry to the second half of ``2 bins`` (one integer
    pass), so each value needs one laned scatter and no product with the
    mask (a float64 product with a bool mask costs 3x a plain one on CPU).
    No autograd.

    Args:
        values (Sequence[Tensor]): (N,) entries each, of one dtype.
        index (ClassIndex): From :func:`class_index`.
        mask (Tensor): (N,) bool.

    Returns:
        Tensor: (len(values), 2, bins).
    """
    bins = index.bins
    laned = torch.add(index.laned, mask.reshape(-1), alpha=bins * LANES)
    return torch.stack([_laned_sum(v, laned, 2 * bins) for v in values]
                       ).view(len(values), 2, bins)
