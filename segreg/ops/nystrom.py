"""Nystrom approximation of softmax attention (Nystromformer).

The whole algorithm lives here as pure tensor functions; the module
:class:`segreg.models.NystromAttention` only adds projections and the
convolution skip. The derivation, the choices made where the paper leaves
freedom (unequal segments, per-matrix pinv initialisation, float32 pinv under
autocast) and the cost analysis are in ``docs/nystrom.md``.

Reference:
    Y. Xiong et al., "Nystromformer: A Nystrom-Based Algorithm for
    Approximating Self-Attention", AAAI 2021 (arXiv:2102.03902), and the
    authors' code (mlpen/Nystromformer, ``code/attention_nystrom.py``).
"""
from __future__ import annotations

import math
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor

__all__ = ['nystrom_attention', 'iterative_pinv', 'segment_means']


def iterative_pinv(a: Tensor, iters: int = 6) -> Tensor:
    """Moore-Penrose pseudo-inverse of square matrices by Newton iterations.

    Runs ``iters`` steps of the third-order iteration of Razavi et al. (2014)
    used by Nystromformer (its eq. 16)::

        Z_{j+1} = 1/4 Z_j (13 I - A Z_j (15 I - A Z_j (7 I - A Z_j)))

    from ``Z_0 = A^T / (||A||_1 ||A||_inf)``, with ``||A||_1`` the largest
    absolute column sum and ``||A||_inf`` the largest absolute row sum, taken
    per matrix (the authors' code takes one maximum over the whole batch,
    which only slows the convergence of the better-scaled matrices). This
    choice of ``Z_0`` makes ``||I - A Z_0||_2 < 1``, so ``Z_j -> pinv(A)``
    with order 3 (for a full-rank ``A``; the error in a well-conditioned
    matrix falls like ``(1 - 1/cond(A)^2)^(3^j)``).

    Args:
        a: matrices to invert, batched over the leading dimensions.
        iters: number of iterations (the paper uses 6).

    Shape:
        a: ``(..., m, m)``; returns ``(..., m, m)``.
    """
    shape, m = a.shape, a.shape[-1]
    a = a.reshape(-1, m, m)
    eye = torch.eye(m, dtype=a.dtype, device=a.device)
    abs_a = a.abs()
    norm_1 = abs_a.sum(dim=-2).amax(dim=-1)[:, None, None]
    norm_inf = abs_a.sum(dim=-1).amax(dim=-1)[:, None, None]
    z = a.transpose(-1, -2) / (norm_1 * norm_inf)
    for _ in range(iters):
        az = torch.bmm(a, z)
        # c I - az @ t as one fused baddbmm each
        t = torch.baddbmm(15 * eye, az, 7 * eye - az, alpha=-1)
        t = torch.baddbmm(13 * eye, az, t, alpha=-1)
        z = 0.25 * torch.bmm(z, t)
    return z.reshape(shape)


def segment_means(x: Tensor, num_segments: int) -> Tensor:
    """Means of ``x`` over ``num_segments`` consecutive segments of its tokens.

    Segment ``i`` (``0 <= i < m``) holds the tokens ``t`` with
    ``floor(i n / m) <= t < floor((i + 1) n / m)``: a partition of the ``n``
    tokens into ``m`` non-empty runs whose lengths differ by at most one
    (``floor(n/m)`` or ``ceil(n/m)``), spread evenly along the sequence.
    When ``m`` divides ``n`` these are the equal segments of the paper.
    Token ``t`` belongs to segment ``floor(((t + 1) m - 1) / n)``.

    Args:
        x: token features.
        num_segments: ``m``, with ``1 <= m <= n``.

    Shape:
        x: ``(..., n, d)``; returns ``(..., m, d)``.
    """
    n, m = x.shape[-2], num_segments
    if not 1 <= m <= n:
        raise ValueError(f'need 1 <= num_segments <= n, got {m} and n={n}')
    if n % m == 0:
        return x.unflatten(-2, (m, n // m)).mean(dim=-2)
    t = torch.arange(n, device=x.device)
    seg = torch.div((t + 1) * m - 1, n, rounding_mode='floor')
    count = torch.bincount(seg, minlength=m).to(x.dtype)
    sums = x.new_zeros(*x.shape[:-2], m, x.shape[-1]).index_add(-2, seg, x)
    return sums / count[:, None]


def nystrom_attention(q: Tensor,
                      k: Tensor,
                      v: Tensor,
                      num_landmarks: int,
                      pinv_iters: int = 6,
                      scale: Optional[float] = None) -> Tensor:
    """Nystrom approximation of ``softmax(q k^T * scale) v`` in O(n m).

    With ``s = scale ** 0.5`` (default ``scale = d ** -0.5``, i.e. q and k
    each scaled by ``d ** -1/4``), landmarks ``q~ = segment_means(s q, m)``
    and ``k~ = segment_means(s k, m)`` (see :func:`segment_means` for the
    segments when ``m`` does not divide ``n``), the result is Nystromformer's
    eq. (15)::

        F = softmax(s q k~^T)     (n x m)
        A = softmax(q~ k~^T)      (m x m)
        B = softmax(q~ s k^T)     (m x n)
        out = F (pinv(A) (B v))

    with ``pinv`` by :func:`iterative_pinv`. The products are taken right to
    left, so time is ``O(n m d + m^2 d + m^3 * iters)`` and memory
    ``O(n m)`` per head, linear in ``n``. When ``num_landmarks >= n`` the
    exact softmax attention is returned instead (``m = n`` landmarks are the
    tokens themselves, where the Nystrom formula is exact in exact
    arithmetic; computing it directly avoids the iterative inverse).

    Under ``torch.autocast`` (and for half-precision inputs) the small
    ``m x m`` kernel ``A`` and its inverse are computed in float32: the
    iteration forms cubic powers of ``A Z`` and rounding in them compounds,
    while the cost, ``O(m^3)``, does not depend on ``n``. Everything of size
    ``n`` runs in the autocast (or input) dtype.

    There is no mask: every token attends to every token (image feature maps
    have no padding tokens). Inputs may be any floating dtype; gradients flow
    through every step, including the pinv iterations.

    Args:
        q: queries.
        k: keys.
        v: values.
        num_landmarks: ``m``, the number of landmarks (segments).
        pinv_iters: iterations of the pseudo-inverse (the paper uses 6).
        scale: softmax temperature; ``None`` means ``d ** -0.5``.

    Shape:
        q: ``(..., n, d)``; k: ``(..., n, d)``; v: ``(..., n, d_v)``, where
        ``...`` are batch dimensions shared by all three (typically
        ``(batch, heads)``). Returns ``(..., n, d_v)``.

    Reference:
        Xiong et al., AAAI 2021, eq. (14)-(16); docs/nystrom.md.
    """
    if q.shape[-1] != k.shape[-1] or q.shape[-2] != k.shape[-2] or (
            k.shape[-2] != v.shape[-2]):
        raise ValueError(f'incompatible shapes q {tuple(q.shape)}, '
                         f'k {tuple(k.shape)}, v {tuple(v.shape)}')
    if num_landmarks < 1:
        raise ValueError(f'num_landmarks must be >= 1, got {num_landmarks}')
    n, d = q.shape[-2], q.shape[-1]
    scale = d**-0.5 if scale is None else scale
    if num_landmarks >= n:
        return F.scaled_dot_product_attention(q, k, v, scale=scale)

    s = math.sqrt(scale)
    q, k = q * s, k * s
    q_l = segment_means(q, num_landmarks)
    k_l = segment_means(k, num_landmarks)
    kernel_f = torch.softmax(q @ k_l.transpose(-1, -2), dim=-1)
    kernel_b = torch.softmax(q_l @ k.transpose(-1, -2), dim=-1)
    with torch.autocast(q.device.type, enabled=False):
        wide = torch.promote_types(q_l.dtype, torch.float32)
        kernel_a = torch.softmax(
            q_l.to(wide) @ k_l.to(wide).transpose(-1, -2), dim=-1)
        a_pinv = iterative_pinv(kernel_a, pinv_iters)
    bv = kernel_b @ v
    return kernel_f @ (a_pinv.to(bv.dtype) @ bv)
