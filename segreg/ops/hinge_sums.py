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
classwise_threshold`); the persistent-dual form ``a = t = eps_c`` (a
parameter) and calls ``hit`` what is ``tp`` here.

Two autograd functions do the (N, C) work: :class:`_LogOddsOwn` (the
scores and each pixel's own-class score) and :class:`_NegativeHingeSum`
(``fp`` and its gradients in ``s``, ``u`` and ``t``); everything per
positive (``tp``, ``n``, the threshold) is N-sized and left to autograd.
Design choices, measured on CPU (benchmarks/loss_cost.py, docs/loss_cost.md):
no one-hot, no boolean masks and no ``torch.where`` on (N, C) tensors (each
costs several plain passes on CPU), per-class sums as plain reductions,
gathers and scatters of the own class through flat storage offsets
(``index_select`` / ``index_add_``), buffers that keep the logits' memory
format (channels-last works without a copy).

The backward of the scores, with ``G = dL/ds`` and ``d_c = S - e_c``: from
``ds_c / dz_k = (delta_ck - p_k) / (1 - p_c)``,

.. math::

    \frac{\partial L}{\partial z_k} = G_k - e_k \sum_{c \ne k} \frac{G_c}{d_c},

evaluated without cancellation: ``d_c >= 1`` except at the pixel's maximum
``a`` (found as ``floor(e_a) = 1``), whose ``1 / d_a`` may be huge, so
``h_a = G_a / d_a`` is kept out of the sum ``H = sum_{c != a} G_c / d_c``:
``dz_k = G_k - e_k (H + h_a - h_k)`` for ``k != a``, ``dz_a = G_a - H``
(:class:`_LogOddsOwn`). The positives' gradient enters ``G`` at the own
class (``index_add_``). Entries clamped at ``s = s_max`` (``p``
rounds to 1; ``log p`` clamped at ``-1e-7``, ``-1e-15`` in float64, as
:func:`segreg.models.losses.dual_metric_loss.class_scores`) get no gradient.

Limits: the hinge surrogate and the log-odds score only (the others keep
``segreg.ops.classwise_negative_hinge``). Several backward passes
(``retain_graph=True``) work; gradcheck runs them.

Reference: docs/loss_cost.md (cost), docs/regularizer_derivation.md (forms).
"""
from __future__ import annotations

import math
from typing import NamedTuple, Optional, Tuple, Union

import torch
from torch import Tensor

__all__ = ['LogOddsScores', 'log_odds_scores', 'negative_hinge_sums',
           'positive_hinge_sums', 'hinge_counts', 'FastHingeCounts',
           'log_odds_clamp']

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


def _class_offsets(x: Tensor) -> Tensor:
    """(B, *spatial) storage offset of class 0 of every pixel of ``x``."""
    B, sp = x.shape[0], x.shape[2:]
    st = x.stride()
    dev = x.device
    off = (torch.arange(B, device=dev) * st[0]).view(B, *([1] * len(sp)))
    for k, n in enumerate(sp):
        shape = [1] * (len(sp) + 1)
        shape[k + 1] = n
        off = off + (torch.arange(n, device=dev) * st[k + 2]).view(shape)
    return off


class _LogOddsOwn(torch.autograd.Function):
    """``(s, s_own, ws)``: the log-odds (B, C, *), each pixel's own-class
    score (N,) at the flat storage offsets ``own``, and a free (B, C, *)
    workspace (reused by :class:`_NegativeHingeSum`, no gradient).

    Per pixel one maximum ``a`` (``e_a = 1``; the last one at ties) is
    treated apart: ``log p`` is clamped there (``r = S - 1 >= r_min``), and
    in the backward its ``1 / d_a`` never meets the other terms: with ``h_c = G_c / d_c`` and ``H = sum_{c != a} h_c``,
    ``dz_k = G_k - e_k (H + h_a - h_k)`` for ``k != a`` and
    ``dz_a = G_a - e_a H``. Saves ``e`` ((N, C)) and N-sized vectors.
    """

    @staticmethod
    def forward(ctx, z: Tensor, own: Tensor, base: Tensor, r_min: float,
                token: dict) -> Tuple[Tensor, Tensor, Tensor]:
        C = z.shape[1]
        view = (1, C) + (1, ) * (z.dim() - 2)
        zm = torch.empty_like(z)
        torch.sub(z, z.amax(dim=1, keepdim=True), out=zm)
        e = torch.exp(zm)
        # the index a: floor(e) is 1 exactly where e = 1 (the maxima)
        ws = torch.floor(e)
        ws.mul_(torch.arange(C, dtype=z.dtype, device=z.device).view(view))
        a = ws.amax(dim=1).long()                    # the last maximum
        off = (base + a * z.stride(1)).reshape(-1)
        S = e.sum(dim=1, keepdim=True)
        r = S.reshape(-1) - 1.0                      # S - e_a, e_a = 1
        live = r > r_min                             # log p not clamped
        d = torch.sub(S, e, out=ws)                  # S - e_c
        # only a maximum can be clamped; on CPU an N-sized test skips the
        # index copy (on a GPU it is cheaper than the synchronisation)
        if z.is_cuda or not bool(live.all()):
            r = r.clamp(min=r_min)
            _flat(d).index_copy_(0, off, r)
        s = zm.sub_(d.log_())
        s_own = _flat(s).index_select(0, own)
        ctx.token = token
        ctx.set_materialize_grads(False)  # no zeros for ws's gradient
        ctx.save_for_backward(e, S, r, off, own, live)
        ctx.mark_non_differentiable(ws)
        return s, s_own, ws

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, G: Optional[Tensor], g_own: Optional[Tensor], _):
        e, S, r, off, own, live = ctx.saved_tensors
        if G is None:
            G = torch.zeros_like(e)
        elif G.data_ptr() != ctx.token.get('grad') or \
                G.stride() != e.stride():
            # not the buffer _NegativeHingeSum handed back: do not modify it
            G = torch.empty_like(e).copy_(G)
        Gf = _flat(G)
        if g_own is not None:
            Gf.index_add_(0, own, g_own.reshape(-1))
        G_a = Gf.index_select(0, off) * live         # clamped: no gradient
        h = torch.sub(S, e)                          # d_c = S - e_c
        _flat(h).index_fill_(0, off, math.inf)       # h_a = 0 below
        torch.div(G, h, out=h)
        H = h.sum(dim=1, keepdim=True)               # sum_{c != a} h_c
        h_a = (G_a / r).view(H.shape)
        X = torch.sub(H + h_a, h, out=h).mul_(e)     # e_k sum_{c != k} h_c
        dz = G.sub_(X)
        _flat(dz).index_copy_(0, off, G_a - H.reshape(-1))  # e_a = 1
        return dz, None, None, None, None


def _class_sum(t: Tensor) -> Tensor:
    """``sum_j t_jc`` over every dim but 1 (C,)."""
    return t.sum(dim=[0] + list(range(2, t.dim())))


class _NegativeHingeSum(torch.autograd.Function):
    """``fp_c = sum_{j: y_j != c} pw_j max(0, u_c s_jc + t_c)``.

    Writes into the workspace ``ws`` (no new (N, C) buffer) and saves only
    ``pw * max(0, .)`` (own class zeroed through the flat offsets ``own``):
    its sign times ``pw`` is the derivative, and ``sum_j pw_j [.>0] s_jc =
    (fp_c - t_c cnt_c) / u_c`` gives the scale's gradient without ``s``
    (``u > 0``). The gradient of ``s`` is a new buffer that the ``token``
    (shared with :class:`_LogOddsOwn`) lets the log-odds backward reuse.
    """

    @staticmethod
    def forward(ctx, s: Tensor, ws: Tensor, own: Tensor,
                pw: Optional[Tensor], scale: Tensor, thr: Tensor,
                token: dict) -> Tensor:
        C = s.shape[1]
        view = (1, C) + (1, ) * (s.dim() - 2)
        u = torch.mul(s, scale.view(view), out=ws)
        u.add_(thr.view(view)).relu_()
        _flat(u).index_fill_(0, own, 0.0)          # not its own negative
        if pw is not None:
            u.mul_(pw)
        fp = _class_sum(u)
        ctx.token = token
        ctx.save_for_backward(u, pw, scale, thr, fp)
        return fp

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g: Tensor):
        u, pw, scale, thr, fp = ctx.saved_tensors
        C = u.shape[1]
        view = (1, C) + (1, ) * (u.dim() - 2)
        M = torch.sign(u)                            # [active]; pw > 0 only
        if pw is not None:
            M.mul_(pw)
        g_scale = g_thr = None
        if ctx.needs_input_grad[4] or ctx.needs_input_grad[5]:
            cnt = _class_sum(M)                      # sum_j pw_j [active]
            g_thr = g * cnt
            g_scale = g * (fp - thr * cnt) / scale
        gs = None
        if ctx.needs_input_grad[0]:
            gs = M.mul_((scale * g).view(view))
            ctx.token['grad'] = gs.data_ptr()  # _LogOddsOwn may reuse it
        return gs, None, None, None, g_scale, g_thr, None


# ---------------------------------------------------------------------------
# public functions
# ---------------------------------------------------------------------------
class LogOddsScores(NamedTuple):
    """The log-odds of a batch and its positives (:func:`log_odds_scores`).

    Attributes:
        scores (Tensor): (B, C, *) log-odds ``s`` (an autograd output).
        pos_scores (Tensor): (N,) ``s_{i, y_i}`` (0-weight at ignored
            pixels, whose value is that of class 0).
        pos_labels (Tensor): (N,) labels, ``C`` at ignored pixels.
        pos_weight (Tensor): (N,) pixel weights, 0 at ignored pixels.
        n_pos (Tensor): (C,) ``n_c = sum_{y_i = c} w_i``.
        own (Tensor): (N,) flat storage offsets of the own-class entries.
        pixel_weight (Tensor | None): (B, 1, *) weights for the negative
            sums; None when every pixel counts with weight 1.
        workspace (list): A free (B, C, *) buffer for the first
            :func:`negative_hinge_sums` call (later calls allocate).
        token (dict): Shared by the two autograd functions (which gradient
            buffer the log-odds backward may modify in place).
    """
    scores: Tensor
    pos_scores: Tensor
    pos_labels: Tensor
    pos_weight: Tensor
    n_pos: Tensor
    own: Tensor
    pixel_weight: Optional[Tensor]
    workspace: list
    token: dict


def log_odds_scores(logits: Tensor, labels: Tensor,
                    weight: Optional[Tensor] = None) -> LogOddsScores:
    r"""Log-odds ``s = log p - log(1 - p)`` of every pixel and its positives.

    Args:
        logits (Tensor): float32 or float64 logits (other dtypes are
            computed in float32). Channels-last input is kept as is.
        labels (Tensor): Class indices; values outside ``[0, C)`` (e.g.
            255, or ``C``) are ignored pixels.
        weight (Tensor, optional): Non-negative pixel weights (0 leaves a
            pixel out).

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
    valid = (y >= 0) & (y < C)
    if weight is not None:
        w = weight.reshape(y.shape).to(dt)
        valid = valid & (w > 0)
        pw = torch.where(valid, w, torch.zeros((), dtype=dt, device=w.device))
    else:
        pw = None if bool(valid.all()) else valid.to(dt)
    y0 = torch.where(valid, y, torch.zeros_like(y))
    base = _class_offsets(x)
    own = (base + y0 * x.stride(1)).reshape(-1)
    _, r_min = log_odds_clamp(dt)
    token: dict = {}
    s, s_own, ws = _LogOddsOwn.apply(x, own, base, r_min, token)
    yf = y0.reshape(-1)
    wf = torch.ones_like(s_own) if pw is None else pw.reshape(-1)
    n = torch.zeros(C, dtype=dt, device=x.device).index_add_(0, yf, wf)
    y_pos = torch.where(valid.reshape(-1), yf, torch.full_like(yf, C))
    pw_b = None if pw is None else pw.unsqueeze(1)
    return LogOddsScores(s, s_own, y_pos, wf, n, own, pw_b, [ws], token)


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
    s = sc.scores
    C = s.shape[1]
    ws = sc.workspace.pop() if sc.workspace else torch.empty_like(s)
    return _NegativeHingeSum.apply(s, ws, sc.own, sc.pixel_weight,
                                   _per_class(scale, C, s),
                                   _per_class(thr, C, s), sc.token)


def positive_hinge_sums(sc: LogOddsScores, scale: Scalar = 1.0,
                        cap: Scalar = 1.0) -> Tensor:
    r"""``tp_c = sum_{y_i = c} w_i min(a_c, v_c s_ic)`` (N-sized, autograd).

    Args:
        sc (LogOddsScores): From :func:`log_odds_scores`.
        scale (float | Tensor): ``v``, scalar or (C,).
        cap (float | Tensor): ``a``, scalar or (C,) (the direct bound's 1,
            the persistent-dual ``eps_c``).

    Returns:
        Tensor: (C,).
    """
    C = sc.n_pos.numel()
    y = torch.where(sc.pos_labels < C, sc.pos_labels,
                    torch.zeros_like(sc.pos_labels))
    f = sc.pos_scores
    if isinstance(scale, Tensor) and scale.numel() > 1:
        f = f * scale.to(f.dtype).index_select(0, y)
    elif not (isinstance(scale, (int, float)) and scale == 1):
        f = f * scale
    if isinstance(cap, Tensor) and cap.numel() > 1:
        hit = torch.minimum(f, cap.to(f.dtype).index_select(0, y))
    elif isinstance(cap, Tensor):
        hit = torch.minimum(f, cap.to(f.dtype).reshape(()))
    else:
        hit = cap - torch.relu(cap - f)  # min(cap, f), today's convention
    return torch.zeros(C, dtype=f.dtype, device=f.device).index_add(
        0, y, sc.pos_weight * hit)


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
                 scale: Scalar = 1.0) -> FastHingeCounts:
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

    Returns:
        FastHingeCounts: ``(tp_l, fp_u, n_pos)``, (C,) each.
    """
    if surrogate != 'hinge':
        raise ValueError("hinge_counts implements surrogate='hinge' only; "
                         f'got {surrogate!r} (use segreg.ops.'
                         'classwise_negative_hinge for the others)')
    sc = log_odds_scores(logits, labels, weight)
    fp = negative_hinge_sums(sc, 1.0, scale)
    tp = positive_hinge_sums(sc, scale, 1.0)
    return FastHingeCounts(tp, fp, sc.n_pos)
