r"""The hinge sums of :mod:`segreg.ops.hinge_sums` as torch.compile kernels.

Same quantities, values and gradients as the sparse kernel of
:mod:`segreg.ops.hinge_sums` (module docstring there), computed densely by
three element-wise kernels that ``torch.compile`` (TorchInductor: C++ /
OpenMP on CPU, Triton on GPU) fuses into a few loops over the logits:

1. ``own``: per pixel ``m = max_k z_k``, ``S = sum_k e^{z_k - m}`` and the
   own-class log-odds ``s_{i, y_i} = (z - m) - log(S - e)`` (one read of
   ``z``; ``m`` and ``S`` are the only saved N-sized state).
2. ``negative``: for every class ``fp_c = sum_{y_j != c} w_j max(0, u_c
   s_jc + t_c)`` together with the two per-class sums its backward needs,
   ``dfp_c / dt_c = sum [active] w`` and ``dfp_c / du_c = sum [active] w s``
   (the Jacobian of ``fp`` in the per-class ``u``, ``t`` is diagonal), so
   that the backward of ``fp`` needs no pass over the logits.
3. ``backward``: one pass that rebuilds ``s`` from ``z, m, S``, forms the
   score gradients ``G`` (own entries from ``ds_own``, negatives from every
   ``negative`` call's ``dL/dfp * u``) and writes ``dz_k = S h_k - e_k
   sum_c h_c`` with ``h = G / (S - e)``; at a pixel's dominant maximum
   (``S - e < 1``) ``dz_a = G_a - sum_{c != a} h_c``, where the first form
   would cancel (as the sparse kernel's backward).

Why hand-written kernels for ``torch.compile``: the sparse kernel keeps
the softmax, an (N, C) buffer, for its backward and runs every step as its
own eager pass; these kernels keep only ``m`` and ``S`` (N-sized) and fuse
each stage into a loop over the logits, which halves the loss's peak memory
at full resolution. On CPU (one thread) that buys no time: each loop still
evaluates ``exp`` and ``log`` at every entry, where the sparse kernel
evaluates the negatives only at the few active pairs (docs/loss_cost.md has
the measured table, compile time included). Opt-in (``kernel='compiled'``
of the pixel losses) because compilation needs a C++ compiler on CPU
(Triton on GPU) and takes seconds per new shape; not yet measured on a GPU.

Reference: docs/loss_cost.md (cost), :mod:`segreg.ops.hinge_sums` (maths).
"""
from __future__ import annotations

import functools
from typing import List, Optional, Tuple

import torch
from torch import Tensor

__all__ = ['CompiledOwn', 'CompiledNegativeHinge']


def _view(z: Tensor) -> Tuple[int, ...]:
    """Shape that broadcasts a (C,) vector over ``z``'s class dim."""
    return (1, z.shape[1]) + (1, ) * (z.dim() - 2)


def _own_kernel(z: Tensor, y0: Tensor, r_min: float):
    """``(m, S, s_own, live_own)``: ``m, S`` (B, 1, ...); the own-class
    log-odds and its not-clamped mask (B, 1, ...)."""
    m = z.amax(dim=1, keepdim=True)
    zm = z - m
    S = zm.exp().sum(dim=1, keepdim=True)
    zo = zm.gather(1, y0.unsqueeze(1))
    d = S - zo.exp()
    live = (d > r_min).to(z.dtype)
    return m, S, zo - d.clamp(min=r_min).log(), live


def _negative_kernel(z: Tensor, m: Tensor, S: Tensor, y0: Tensor, w: Tensor,
                     u: Tensor, t: Tensor, r_min: float):
    """``(fp, dfp/dt, dfp/du)``, (C,) each, densely."""
    view = _view(z)
    zm = z - m
    s = zm - (S - zm.exp()).clamp(min=r_min).log()
    cls = torch.arange(z.shape[1], device=z.device).view(view)
    neg = w.unsqueeze(1) * (y0.unsqueeze(1) != cls).to(z.dtype)
    v = u.view(view) * s + t.view(view)
    act = neg * (v > 0).to(z.dtype)
    dims = [0] + list(range(2, z.dim()))
    return (act * v).sum(dims), act.sum(dims), (act * s).sum(dims)


def _backward_kernel(z: Tensor, m: Tensor, S: Tensor, y0: Tensor, w: Tensor,
                     g_own: Tensor, neg: List[Tuple[Tensor, Tensor, Tensor]],
                     r_min: float) -> Tensor:
    """``dL/dz`` from the own scores' gradient ``g_own`` (B, 1, ...) and,
    per :class:`CompiledNegativeHinge` call, ``(dL/dfp * u, u, t)``."""
    view = _view(z)
    zm = z - m
    e = zm.exp()
    d0 = S - e
    d = d0.clamp(min=r_min)
    s = zm - d.log()
    cls = torch.arange(z.shape[1], device=z.device).view(view)
    own = y0.unsqueeze(1) == cls
    wn = w.unsqueeze(1) * (~own).to(z.dtype)
    G = own.to(z.dtype) * g_own
    for gu, u, t in neg:
        G = G + wn * gu.view(view) * (u.view(view) * s + t.view(view) > 0
                                      ).to(z.dtype)
    G = G * (d0 > r_min).to(z.dtype)     # clamped entries: no gradient
    h = G / d
    dom = d < 1                          # a pixel's dominant maximum
    h_dom = torch.where(dom, h, torch.zeros_like(h))
    rest = (h - h_dom).sum(dim=1, keepdim=True)
    total = rest + h_dom.sum(dim=1, keepdim=True)
    return torch.where(dom, G - rest, S * h - e * total)


@functools.lru_cache(maxsize=None)
def _compiled(name: str):
    """The kernel ``name``, compiled on first use (default dynamic-shape
    policy: static first, generalised on the first recompile)."""
    fn = dict(own=_own_kernel, negative=_negative_kernel,
              backward=_backward_kernel)[name]
    return torch.compile(fn)


def _run(name: str, *args):
    try:
        return _compiled(name)(*args)
    except Exception as err:  # the compiler's own error is pages long
        raise RuntimeError(
            f"kernel='compiled' (segreg.ops.compiled_hinge, kernel {name!r}) "
            f'failed: torch.compile could not build or run it on '
            f'{args[0].device.type} ({type(err).__name__}: '
            f"{str(err).strip().splitlines()[0][:200]}); it needs a C++ "
            "compiler on CPU and Triton on GPU. Set kernel='sparse' in the "
            'loss config to use the eager kernel') from err


class CompiledOwn(torch.autograd.Function):
    """``(s_own, link)`` as :class:`segreg.ops.hinge_sums._SoftmaxOwn`, on
    the compiled kernels: forward keeps ``m, S`` only; backward is the one
    dense pass of ``_backward_kernel`` with every negative call's sparse
    state that :class:`CompiledNegativeHinge`'s backward left in the
    token."""

    @staticmethod
    def forward(ctx, z: Tensor, y0: Tensor, pw: Optional[Tensor],
                r_min: float, token: dict) -> Tuple[Tensor, Tensor]:
        sp = y0.shape
        w = torch.ones(sp, dtype=z.dtype, device=z.device) if pw is None \
            else pw.reshape(sp)
        m, S, s_own, live = _run('own', z, y0, r_min)
        token.update(z=z, y0=y0, w=w, m=m, S=S, r_min=r_min, grads=[])
        ctx.token = token
        ctx.save_for_backward(z, y0, w, m, S, live)
        return s_own.reshape(-1), z.new_zeros(())

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g_own: Tensor, _link: Tensor):
        z, y0, w, m, S, live = ctx.saved_tensors
        neg = ctx.token.pop('grads', [])
        ctx.token['grads'] = []
        g = g_own.reshape(live.shape) * live
        dz = _run('backward', z, m, S, y0, w, g, neg, ctx.token['r_min'])
        return dz, None, None, None, None


class CompiledNegativeHinge(torch.autograd.Function):
    """``fp_c = sum_{y_j != c} w_j max(0, u_c s_jc + t_c)`` densely, as
    :class:`segreg.ops.hinge_sums._SparseNegativeHinge` (same inputs). Its
    backward returns the ``u``, ``t`` gradients from the per-class sums of
    the forward and leaves ``(dL/dfp * u, u, t)`` in the token for
    :class:`CompiledOwn`'s dense pass."""

    @staticmethod
    def forward(ctx, link: Tensor, scale: Tensor, thr: Tensor,
                pw: Optional[Tensor], token: dict) -> Tensor:
        t = token
        fp, d_thr, d_scale = _run('negative', t['z'], t['m'], t['S'],
                                  t['y0'], t['w'], scale.contiguous(),
                                  thr.contiguous(), t['r_min'])
        ctx.token = token
        ctx.save_for_backward(scale, thr, d_thr, d_scale)
        return fp

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, g: Tensor):
        scale, thr, d_thr, d_scale = ctx.saved_tensors
        if ctx.needs_input_grad[0]:
            ctx.token.setdefault('grads', []).append((g * scale, scale, thr))
        link = torch.zeros((), dtype=g.dtype, device=g.device)
        return link, g * d_scale, g * d_thr, None, None
