r"""Per-class hinge sums of softmax log-odds at every pixel, with a lean backward.

Every pixel form of the dual-projected IoU / F-beta losses reduces a batch
to a few per-class sums of the log-odds scores

.. math::

    s_{ic} = \log p_{ic} - \log(1 - p_{ic})
           = (z_{ic} - m_i) - \log(S_i - e_{ic}),\qquad
    e_{ic} = e^{z_{ic} - m_i},\ S_i = \sum_k e_{ik},\ m_i = \max_k z_{ik},

namely (``w_i`` the pixel weight, ``v_c``, ``u_c`` per-class score scales,
``a_c`` a cap, ``t_c`` a threshold)

.. math::

    n_c = \sum_{y_i = c} w_i,\quad
    tp_c = \sum_{y_i = c} w_i \min(a_c, v_c s_{ic}),\quad
    fp_c = \sum_{y_j \ne c} w_j \max(0, u_c s_{jc} + t_c).

The direct bound uses ``a = t = 1``; the exact LP ``t = eps*`` (the
water-filling threshold of the positives, :func:`segreg.ops.
newton_threshold`); the persistent-dual form ``a = t = eps_c`` (a
parameter) and calls ``hit`` what is ``tp`` here.

Two autograd functions do the work, and only one (N, C) buffer is kept:
``e = exp(z - m)``, the softmax before its division (``p = e / S``).

* :class:`_SoftmaxOwn` computes ``e`` and ``S`` (max, ``exp``, sum) and the
  own-class scores ``s_{i, y_i}`` from gathered entries.
* :class:`_SparseNegativeHinge` uses that the hinge is sparse: ``u s + t >
  0`` iff ``p > sigmoid(-t / u)``, and the probabilities of a pixel sum to
  1, so at most ``1 / sigmoid(-t/u)`` classes of a pixel are active (3 for
  the direct bound's ``t = u = 1``; far fewer in a trained network). The
  active pairs are found on ``e - S sigmoid(-t/u)`` (``p > lim`` iff ``e >
  S lim``; a superset, with the limit lowered by a relative 1e-4) and the
  hinge is evaluated exactly on them from the logits, as a dense
  evaluation would.

Every gradient of the scores is then sparse (the own entries and the active
negatives), and the backward of the log-odds, with ``G = dL/ds``,
``d_c = S - e_c`` and ``h_c = G_c / d_c``,

.. math::

    \frac{\partial L}{\partial z_k} = S h_k - e_k \sum_c h_c ,

is one dense pass (``-e_k sum_c h_c``) plus scattered corrections. At a
pixel's dominant maximum ``a`` (``d_a < 1``: ``p_a > 1/2``, so at most one
per pixel) ``h_a`` may be huge and the form cancels, so there ``dz_a = G_a
- sum_{c != a} h_c`` is written directly (``S - 1 = d_a``, ``e_a = 1``).
The negatives' gradients travel to the softmax node's backward through a
shared ``token`` and a 0-dim ``link`` output, so the dense pass happens
once, whatever the number of :func:`negative_hinge_sums` calls. Entries
clamped at ``s = s_max`` (``p`` rounds to 1; ``log p`` clamped at ``-1e-7``,
``-1e-15`` in float64, as
:func:`segreg.models.losses.dual_metric_loss.class_scores`) get no gradient.

Cost (benchmarks/loss_cost.py, docs/loss_cost.md): O(N C) for the softmax
and one backward pass, O(N + K) for the rest (K active pairs); at 171
classes about CE's cost, at 12 classes the N-sized bookkeeping dominates.

``log_odds_scores(..., kernel='compiled')`` replaces both functions by
the ``torch.compile`` kernels of :mod:`segreg.ops.compiled_hinge` (the
same values and gradients, dense, no (N, C) buffer kept); the public
functions below work with either.

Limits: the hinge surrogate and the log-odds score only (the others keep
``segreg.ops.classwise_negative_hinge``). Several backward passes
(``retain_graph=True``) work; gradcheck runs them. A backward that reaches
a :func:`negative_hinge_sums` node but not the softmax node (e.g.
``autograd.grad`` with respect to ``thr`` alone) leaves its sparse
gradient in the token for the next backward of that graph; differentiate
the logits in the same call.

Reference: docs/loss_cost.md (cost), docs/regularizer_derivation.md (forms).
"""
from __future__ import annotations

import functools
import math
from typing import NamedTuple, Optional, Tuple, Union

import torch
from torch import Tensor

from .class_sums import ClassIndex, class_gather, class_index, class_sum

__all__ = ['LogOddsScores', 'log_odds_scores', 'negative_hinge_sums',
           'positive_hinge_sums', 'hinge_counts', 'FastHingeCounts',
           'log_odds_clamp', 'KERNELS']

Scalar = Union[float, Tensor]


def log_odds_clamp(dtype: torch.dtype) -> Tuple[float, float]:
    """``(s_max, r_min)``: the log-odds clamp of ``class_scores``.

    ``log p`` is clamped at ``-tiny`` (``tiny = 1e-7``; ``1e-15`` for
    float64), i.e. ``s <= s_max = -tiny - log(1 - e^{-tiny})``; for the
    pixel's maximum ``s = -log(S - 1)``, so the clamp is ``S - 1 >= r_min =
    expm1(tiny) = e^{-s_max}``.
    """
    tiny = 1e-15 if dtype == torch.float64 else 1e-7
    r_min = math.expm1(tiny)
    return -math.log(r_min), r_min


def _dense(x: Tensor) -> Tensor:
    """``x`` itself if contiguous or channels-last, else a contiguous copy."""
    if x.is_contiguous() or (x.dim() == 4 and x.is_contiguous(
            memory_format=torch.channels_last)):
        return x
    return x.contiguous()


def _flat(x: Tensor) -> Tensor:
    """1-D view of a dense tensor's storage (offset 0, no gaps)."""
    return x.as_strided((x.numel(), ), (1, ))


def _positive(x: Tensor) -> Tensor:
    """``[x > 0]`` as 0/1 in ``x``'s dtype (``sign`` of the clamp: cheaper
    on CPU than a comparison and a conversion)."""
    return x.clamp(min=0).sign_()


def _gathered_log_odds(zm: Tensor, S: Tensor, r_min: float):
    """``(s, d, live, e)`` of gathered entries from ``zm = z - m`` and their
    pixels' ``S``: ``e = exp(zm)``, ``d = S - e`` clamped at ``r_min`` (only
    a pixel's maximum can be; ``live`` is 0 there: no gradient),
    ``s = zm - log d``."""
    e = zm.exp()
    d = S - e
    live = _positive(d - r_min)
    d = d.clamp(min=r_min)
    return zm - d.log(), d, live, e


_LOG2E = 1.0 / math.log(2.0)


def _exp_shifted(z: Tensor, m: Tensor, out: Tensor) -> Tensor:
    """``out = exp(z - m)`` (``m`` broadcast over the class dim).

    float32: ``exp2((z - m) log2(e))``: ``exp2`` takes about 0.4x the time
    of ``exp`` on CPU (docs/loss_cost.md), and with the product the three
    passes take 0.65x of ``sub`` and ``exp``. The difference is taken
    first, so the error does not grow with the size of the logits (one
    ``addcmul``, ``z log2(e) - m log2(e)``, saves a pass but its relative
    error reaches 5e-6 at logits of 30 and 2e-4 at 1000): measured below
    7e-7 relative wherever ``|z - m| < 5``, against 3e-7 for ``exp``. The
    own-class entries, whose values the loss reports, keep ``exp``. float64
    keeps ``exp`` (no gain measured).
    """
    torch.sub(z, m, out=out)
    if z.dtype != torch.float32:
        return out.exp_()
    return out.mul_(_LOG2E).exp2_()


def _class_offsets(x: Tensor) -> Tensor:
    """(N,) storage offset of class 0 of every pixel of ``x`` (read-only:
    cached per shape, strides and device, since every step of a training
    run asks for the same one)."""
    return _offsets(tuple(x.shape), tuple(x.stride()), x.device)


@functools.lru_cache(maxsize=8)
def _offsets(shape: Tuple[int, ...], stride: Tuple[int, ...],
             dev: torch.device) -> Tensor:
    B, sp = shape[0], shape[2:]
    off = (torch.arange(B, device=dev) * stride[0]).view(B, *([1] * len(sp)))
    for k, n in enumerate(sp):
        view = [1] * (len(sp) + 1)
        view[k + 1] = n
        off = off + (torch.arange(n, device=dev) * stride[k + 2]).view(view)
    return off.reshape(-1)


class _SoftmaxOwn(torch.autograd.Function):
    """``(s_own, link)``: each pixel's own-class log-odds (N,) and a 0-dim
    link that :class:`_SparseNegativeHinge` takes as input, so that its
    backward runs first and leaves its sparse gradient in ``token``.

    Forward: ``e = exp(z - m)`` (one (N, C) buffer) and ``S = sum e``, kept
    for the sparse passes and the backward (the softmax ``e / S`` is never
    divided out: one pass fewer); the own-class
    ``s = (z - m) - log(S - e)`` from gathered entries (``d = S - e`` clamped
    at ``r_min``: only a pixel's maximum can be, and then gets no gradient).

    Backward: every gradient of the scores is sparse (the own entries, and
    the active negatives of each :func:`negative_hinge_sums` call). With
    ``h = G / d`` per entry, ``dz_k = S h_k - e_k sum_c h_c``; the dense part
    ``-e_k sum_c h_c`` is one (N, C) pass, the rest is scattered. At a
    dominant maximum (``d < 1``, at most one per pixel) that form cancels
    (``h`` is huge), so there ``dz_a = G_a - sum_{c != a} h_c`` is written
    directly (``S - 1 = d_a``, ``e_a = 1``).
    """

    @staticmethod
    def forward(ctx, z: Tensor, own: Tensor, base: Tensor, r_min: float,
                token: dict) -> Tuple[Tensor, Tensor]:
        m = z.amax(dim=1, keepdim=True)
        e = torch.empty_like(z)           # z's strides: flat offsets agree
        _exp_shifted(z, m, out=e)         # e = S p: no division pass
        S = e.sum(dim=1, keepdim=True)
        Sf, mf = S.reshape(-1), m.reshape(-1)
        s_own, d, live, e_own = _gathered_log_odds(
            _flat(z).index_select(0, own) - mf, Sf, r_min)
        token.update(z=z, e=e, S=S, Sf=Sf, m=mf, base=base, own=own,
                     r_min=r_min, grads=[])
        ctx.token = token
        ctx.save_for_backward(e, S, own, d, live, e_own)
        return s_own, z.new_zeros(())

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g_own: Tensor, _link: Tensor):
        e, S, own, d_own, live, e_own = ctx.saved_tensors
        Sf = S.reshape(-1)
        # the own entries: one per pixel, aligned with the pixels. Masks
        # are 0/1 floats and selections products (finite values only):
        # torch.where and bool conversions are 3-10x dearer on CPU
        g = g_own.reshape(-1) * live
        h_own = g / d_own
        sp_own = _positive(1.0 - d_own)   # own class is the dominant maximum
        h_max = h_own * sp_own
        h_rest = h_own - h_max
        g_max = g * sp_own
        # the negatives' sparse gradients (their pixels hold few entries)
        grads = ctx.token.pop('grads', [])
        ctx.token['grads'] = []
        if grads:
            off, pix, G, d = grads[0] if len(grads) == 1 else (
                torch.cat(t) for t in zip(*grads))
            h = G / d
            special = _positive(1.0 - d)
            h_sp = h * special
            h_rest.index_add_(0, pix, h - h_sp)
            h_max.index_add_(0, pix, h_sp)
            g_max.index_add_(0, pix, G * special)
        # dense: -e_k H, H = sum_c h_c
        H = h_rest + h_max if grads else h_own
        dz = torch.mul(e, (-H).view(S.shape))
        dzf = _flat(dz)
        # own entries: their final value, written (S h - e H, from the
        # forward's own e, or at a dominant maximum G_a - sum_{c != a} h_c,
        # where the first form cancels: never added and removed). lerp at
        # weight 0 or 1 returns its start resp. end exactly (ATen evaluates
        # ``end - (end - start) (1 - w)`` for w >= 1/2; tested): one pass
        # instead of four
        val = torch.lerp(Sf * h_own - e_own * H, g_max - h_rest, sp_own)
        dzf.index_copy_(0, own, val)
        if grads:
            dzf.index_add_(0, off, Sf.index_select(0, pix) * (h - h_sp))
            sp = special.nonzero().squeeze(1)   # rare: wrong and confident
            if sp.numel():
                dzf.index_copy_(0, off.index_select(0, sp),
                                (g_max - h_rest).index_select(
                                    0, pix.index_select(0, sp)))
        return dz, None, None, None, None


class _SparseNegativeHinge(torch.autograd.Function):
    """``fp_c = sum_{j: y_j != c} pw_j max(0, u_c s_jc + t_c)`` from the
    active pairs only.

    ``u s + t > 0`` iff ``p_jc > sigmoid(-t_c / u_c)`` (``s`` is the
    log-odds of ``p``), so the pairs are selected on ``e - S lim`` (``p =
    e / S``) with that threshold ``lim`` lowered by a relative 1e-4 (a
    superset; the hinge itself is then evaluated exactly on the selected
    pairs, from the logits, as the dense form would). Since the
    probabilities of a pixel sum to 1, at most ``floor(1 / sigmoid(-t/u))``
    classes of a pixel can be selected (3 for the direct bound's ``t = u =
    1``), so the work after the selection is O(N), not O(N C). Saves only
    per-pair vectors.
    """

    @staticmethod
    def forward(ctx, link: Tensor, scale: Tensor, thr: Tensor,
                pw: Optional[Tensor], token: dict) -> Tensor:
        z, e, S, Sf, mf = (token[k] for k in ('z', 'e', 'S', 'Sf', 'm'))
        B, C = e.shape[:2]
        view = (1, C) + (1, ) * (e.dim() - 2)
        with torch.no_grad():
            lim = torch.sigmoid(-(thr.double() / scale.double())) * (1 - 1e-4)
        # margin over the class's limit, e - S lim (p > lim iff e > S lim:
        # one pass, no softmax division), own entries excluded; a pixel
        # has a candidate iff its largest margin is positive. Then the few
        # such pixels' rows: small nonzero calls instead of one over N C
        gap = torch.addcmul(e, S, lim.to(e.dtype).view(view), value=-1.0)
        # own entries out: e - S lim - S < 0 (e <= S). An index_add_ of S,
        # not an index_fill_ of -1: about half the time on CPU
        _flat(gap).index_add_(0, token['own'], Sf, alpha=-1.0)
        rows = gap.amax(dim=1).reshape(-1)
        if pw is not None:  # pw >= 0: the product is > 0 iff both are
            rows = rows * pw
        rows = rows > 0
        px = rows.nonzero().squeeze(1)
        cls = torch.arange(C, device=e.device) * e.stride(1)
        rows_off = token['base'].index_select(0, px).unsqueeze(1) + cls
        k = (_flat(gap).index_select(0, rows_off.reshape(-1)).view(-1, C)
             > 0).nonzero()
        pix, c = px.index_select(0, k[:, 0]), k[:, 1]
        off = token['base'].index_select(0, pix) + c * z.stride(1)
        s, d, live, _ = _gathered_log_odds(
            _flat(z).index_select(0, off) - mf.index_select(0, pix),
            Sf.index_select(0, pix), token['r_min'])
        v = torch.relu(scale.index_select(0, c) * s + thr.index_select(0, c))
        w = _positive(v)
        if pw is not None:
            w = w * pw.index_select(0, pix)
        fp = torch.zeros(C, dtype=v.dtype, device=v.device).index_add_(
            0, c, w * v if pw is not None else v)
        ctx.token = token
        ctx.save_for_backward(off, pix, c, d, live, s, w, scale)
        return fp

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g: Tensor):
        off, pix, c, d, live, s, w, scale = ctx.saved_tensors
        if ctx.needs_input_grad[0]:
            G = (g * scale).index_select(0, c) * w * live
            ctx.token.setdefault('grads', []).append((off, pix, G, d))
        g_scale = g_thr = None
        if ctx.needs_input_grad[1] or ctx.needs_input_grad[2]:
            C = g.numel()
            z = torch.zeros(C, dtype=g.dtype, device=g.device)
            g_thr = g * z.index_add(0, c, w)          # sum pw [active]
            g_scale = g * z.index_add(0, c, w * s)    # sum pw [active] s
        link = torch.zeros((), dtype=g.dtype, device=g.device)
        return link, g_scale, g_thr, None, None


# ---------------------------------------------------------------------------
# public functions
# ---------------------------------------------------------------------------
class LogOddsScores(NamedTuple):
    """The softmax state of a batch and its positives (:func:`log_odds_scores`).

    Attributes:
        pos_scores (Tensor): (N,) ``s_{i, y_i}`` (0-weight at ignored
            pixels, whose value is that of their label clamped into
            ``[0, C)``); an autograd output.
        pos_class (Tensor): (N,) labels clamped into ``[0, C)``: the class
            of a valid pixel; at an ignored pixel (weight 0) meaningless.
            ``pos_labels`` (a property) has ``C`` there.
        pos_weight (Tensor): (N,) pixel weights, 0 at ignored pixels.
        n_pos (Tensor): (C,) ``n_c = sum_{y_i = c} w_i``.
        index (ClassIndex): ``pos_class`` for :func:`segreg.ops.class_sum`
            and :func:`segreg.ops.class_gather` (built once per batch).
        link (Tensor): 0-dim autograd link to the softmax node.
        pixel_weight (Tensor | None): (N,) weights for the negative sums;
            None when every pixel counts with weight 1.
        token (dict): The softmax, its sums and the sparse gradients shared
            by the autograd functions.
    """
    pos_scores: Tensor
    pos_class: Tensor
    pos_weight: Tensor
    n_pos: Tensor
    index: ClassIndex
    link: Tensor
    pixel_weight: Optional[Tensor]
    token: dict

    @property
    def pos_labels(self) -> Tensor:
        """(N,) labels with ``C`` at ignored pixels (computed on access)."""
        C = self.n_pos.numel()
        return torch.where(self.pos_weight > 0, self.pos_class,
                           torch.full_like(self.pos_class, C))


def _sparse_own(x: Tensor, y0: Tensor, pw: Optional[Tensor], r_min: float,
                token: dict) -> Tuple[Tensor, Tensor]:
    """``(s_own, link)`` of the sparse kernel (flat storage offsets)."""
    token['negative'] = _SparseNegativeHinge
    base = _class_offsets(x)
    own = torch.add(base, y0.reshape(-1), alpha=x.stride(1))
    return _SoftmaxOwn.apply(x, own, base, r_min, token)


def _compiled_own(x: Tensor, y0: Tensor, pw: Optional[Tensor], r_min: float,
                  token: dict) -> Tuple[Tensor, Tensor]:
    """``(s_own, link)`` of the compiled kernel (segreg.ops.compiled_hinge,
    imported on first use: torch.compile is not loaded otherwise)."""
    from segreg.ops.compiled_hinge import CompiledNegativeHinge, CompiledOwn
    token['negative'] = CompiledNegativeHinge
    return CompiledOwn.apply(x, y0, None if pw is None else pw.reshape(-1),
                             r_min, token)


#: kernel name -> its own-scores function, which also puts the kernel's
#: negative-hinge autograd Function in the token
KERNELS = {'sparse': _sparse_own, 'compiled': _compiled_own}


def log_odds_scores(logits: Tensor, labels: Tensor,
                    weight: Optional[Tensor] = None,
                    kernel: str = 'sparse',
                    checked: bool = False) -> LogOddsScores:
    r"""Softmax state of a batch and the log-odds of its positives.

    Args:
        logits (Tensor): float32 or float64 logits (other dtypes are
            computed in float32). Channels-last input is kept as is.
        labels (Tensor): Class indices; values outside ``[0, C)`` (e.g.
            255, or ``C``) are ignored pixels.
        weight (Tensor, optional): Non-negative pixel weights (0 leaves a
            pixel out).
        kernel (str): ``'sparse'`` (default; eager PyTorch, this module) or
            ``'compiled'`` (the same values and gradients from
            ``torch.compile`` kernels, :mod:`segreg.ops.compiled_hinge`:
            no (N, C) buffer kept, about half the peak memory; needs a C++
            compiler on CPU / Triton on GPU and compiles on the first use
            of a shape).
        checked (bool): The caller guarantees what
            :class:`segreg.models.losses.PixelBatch` does: ``weight`` is
            None only if every label is in ``[0, C)``, and otherwise
            non-negative and 0 wherever the label is not. Then ``weight``
            is used as given (no validity masks: four fewer passes over
            the pixels).

    Returns:
        LogOddsScores: feed it to :func:`negative_hinge_sums` and
        :func:`positive_hinge_sums`.

    Shape:
        logits (B, C, ...); labels and weight (B, ...) or any shape with
        ``B * prod(...)`` elements.

    Reference:
        Module docstring; docs/regularizer_derivation.md (scores).
    """
    if logits.dim() < 2:
        raise ValueError('log_odds_scores: logits must be (B, C, ...), got '
                         f'shape {tuple(logits.shape)}')
    dt = torch.float64 if logits.dtype == torch.float64 else torch.float32
    x = _dense(logits.to(dt))
    B, C = x.shape[:2]
    y = labels.reshape(B, *x.shape[2:]).long()
    # an ignored pixel's class does not matter (its weight is 0): clamping
    # is cheaper than a selection, and a label is valid iff clamping kept it
    y0 = y.clamp(0, C - 1)
    if checked:
        pw = None if weight is None else weight.reshape(y.shape).to(dt)
    elif weight is not None:
        w = weight.reshape(y.shape).to(dt)
        valid = (y0 == y) & (w > 0)
        pw = torch.where(valid, w, torch.zeros((), dtype=dt, device=w.device))
    else:
        valid = y0 == y
        pw = None if bool(valid.all()) else valid.to(dt)
    _, r_min = log_odds_clamp(dt)
    try:
        own_fn = KERNELS[kernel]
    except KeyError:
        raise ValueError(f'log_odds_scores: kernel must be one of '
                         f'{sorted(KERNELS)}, got {kernel!r}') from None
    token: dict = {}
    s_own, link = own_fn(x, y0, pw, r_min, token)
    index = class_index(y0, C)
    if pw is None:
        wf, pw_f = torch.ones_like(s_own), None
    else:
        wf = pw_f = pw.reshape(-1)
    n = class_sum(wf, index)
    return LogOddsScores(s_own, index.labels, wf, n, index, link, pw_f, token)


def _per_class(v: Scalar, C: int, ref: Tensor) -> Tensor:
    if isinstance(v, Tensor):
        return v.to(ref.dtype).reshape(-1).expand(C) if v.numel() == 1 \
            else v.to(ref.dtype)
    return torch.full((C, ), float(v), dtype=ref.dtype, device=ref.device)


def negative_hinge_sums(sc: LogOddsScores, thr: Scalar = 1.0,
                        scale: Scalar = 1.0) -> Tensor:
    r"""``fp_c = sum_{y_j != c} w_j max(0, u_c s_jc + t_c)`` for every class.

    Args:
        sc (LogOddsScores): From :func:`log_odds_scores`.
        thr (float | Tensor): ``t``, scalar or (C,); differentiable.
        scale (float | Tensor): ``u > 0``, scalar or (C,); differentiable.

    Returns:
        Tensor: (C,) in the scores' dtype.
    """
    C = sc.n_pos.numel()
    ref = sc.pos_scores
    return sc.token['negative'].apply(sc.link, _per_class(scale, C, ref),
                                      _per_class(thr, C, ref),
                                      sc.pixel_weight, sc.token)


def positive_hinge_sums(sc: LogOddsScores, scale: Scalar = 1.0,
                        cap: Scalar = 1.0,
                        scores: Optional[Tensor] = None) -> Tensor:
    r"""``tp_c = sum_{y_i = c} w_i min(a_c, v_c s_ic)`` (N-sized, autograd).

    ``min(a, f)`` is written ``a - relu(a - f)`` (at a tie ``f = a`` the
    gradient goes to ``a``): ``torch.minimum``'s backward, which splits a
    tie, costs about eight passes over the positives instead of one.

    A per-class ``v`` (> 0) is factored out, ``min(a, v s) = v min(a / v,
    s)``: one gather of ``a / v`` per positive instead of two gathers and
    a product (forward and backward).

    Args:
        sc (LogOddsScores): From :func:`log_odds_scores`.
        scale (float | Tensor): ``v > 0``, scalar or (C,).
        cap (float | Tensor): ``a``, scalar or (C,) (the direct bound's 1,
            the persistent-dual ``eps_c``).
        scores (Tensor, optional): (N,) ``v_{y_i} s_{i, y_i}`` when the
            caller has it already (``scale`` is then not used): saves a
            gather and a product, forward and backward.

    Returns:
        Tensor: (C,).
    """
    f = sc.pos_scores
    if scores is None and isinstance(scale, Tensor) and scale.numel() > 1:
        v = scale.to(f.dtype)
        r = class_gather((cap.to(f.dtype) if isinstance(cap, Tensor) else
                          cap) / v, sc.index)
        hit = r - torch.relu(r - f)  # min(a / v, s)
        if sc.pixel_weight is not None:
            hit = sc.pos_weight * hit
        return v * class_sum(hit, sc.index)
    if scores is not None:
        f = scores
    elif not (isinstance(scale, (int, float)) and scale == 1):
        f = f * scale
    if isinstance(cap, Tensor):
        a = cap.to(f.dtype)
        a = class_gather(a, sc.index) if a.numel() > 1 else a.reshape(())
    else:
        a = cap
    hit = a - torch.relu(a - f)  # min(a, f)
    if sc.pixel_weight is not None:
        hit = sc.pos_weight * hit
    return class_sum(hit, sc.index)


class FastHingeCounts(NamedTuple):
    """Per-class sums of the direct bound (field order of ``HingeCounts``).

    Attributes:
        tp_l (Tensor): (C,) ``sum_{y_i = c} w_i min(1, v s_ic)``.
        fp_u (Tensor): (C,) ``sum_{y_j != c} w_j max(0, 1 + v s_jc)``.
        n_pos (Tensor): (C,) ``sum_{y_i = c} w_i``.
    """
    tp_l: Tensor
    fp_u: Tensor
    n_pos: Tensor


def hinge_counts(logits: Tensor, labels: Tensor,
                 weight: Optional[Tensor] = None,
                 surrogate: str = 'hinge',
                 scale: Scalar = 1.0,
                 kernel: str = 'sparse',
                 checked: bool = False) -> FastHingeCounts:
    r"""The direct bound's per-class sums at threshold 1, from the logits.

    .. math::

        tp_c = \sum_{y_i = c} w_i \min(1, v_c s_{ic}),\quad
        fp_c = \sum_{y_j \ne c} w_j \max(0, 1 + v_c s_{jc}),\quad
        n_c = \sum_{y_i = c} w_i

    (Eban et al. 2017; the bound is ``tp / (n + fp)`` for IoU,
    :func:`segreg.ops.hinge_bound_from_counts`). Same values and gradients
    as the reference path (``class_scores`` + ``classwise_negative_hinge``
    + a scatter of the positives), about 5x faster on CPU at full
    resolution (docs/loss_cost.md).

    Args:
        logits (Tensor): (B, C, ...) logits.
        labels (Tensor): (B, ...); values outside [0, C) are ignored.
        weight (Tensor, optional): (B, ...) pixel weights.
        surrogate (str): Only ``'hinge'`` (the others keep the reference
            path).
        scale (float | Tensor): Score scale ``v`` (scalar or (C,)), as a
            constant or differentiable.
        kernel (str): ``'sparse'`` or ``'compiled'``
            (:func:`log_odds_scores`).
        checked (bool): Labels and weight as a ``PixelBatch`` holds them
            (:func:`log_odds_scores`).

    Returns:
        FastHingeCounts: ``(tp_l, fp_u, n_pos)``, (C,) each.
    """
    if surrogate != 'hinge':
        raise ValueError("hinge_counts implements surrogate='hinge' only; "
                         f'got {surrogate!r} (use segreg.ops.'
                         'classwise_negative_hinge for the others)')
    sc = log_odds_scores(logits, labels, weight, kernel, checked)
    fp = negative_hinge_sums(sc, 1.0, scale)
    tp = positive_hinge_sums(sc, scale, 1.0)
    return FastHingeCounts(tp, fp, sc.n_pos)
