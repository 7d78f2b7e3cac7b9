"""MaskedDiceLoss (Dice anchor): ignore pixels masked, unlike mmseg's DiceLoss."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import segreg  # noqa: F401

C = 3


def _build(type_='MaskedDiceLoss', **kw):
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules
    register_all_modules(init_default_scope=False)
    return MODELS.build(dict(type=type_, **kw))


def _batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(2, C, 6, 7, generator=g, dtype=torch.float64)
    y = torch.randint(0, C, (2, 6, 7), generator=g)
    y[torch.rand(2, 6, 7, generator=g) < 0.25] = 255
    return x, y


def test_value_against_numpy_on_the_kept_pixels():
    x, y = _batch()
    loss = _build(loss_weight=2.0)
    assert loss.loss_name == 'loss_masked_dice'
    p = torch.softmax(x, 1).permute(0, 2, 3, 1).reshape(-1, C).numpy()
    lab = y.reshape(-1).numpy()
    keep = lab != 255
    p, lab = p[keep], lab[keep]
    terms = [1 - (2 * p[lab == c, c].sum() + 1e-3) /
             (p[:, c].sum() + (lab == c).sum() + 1e-3)
             for c in range(C) if (lab == c).any()]
    assert loss(x, y).item() == pytest.approx(2 * np.mean(terms), rel=1e-10)


def test_ignored_pixels_change_nothing_where_mmseg_dice_changes():
    x, y = _batch(1)
    ign = (y == 255).unsqueeze(1).expand_as(x)
    x2 = x.clone()
    x2[ign] = torch.randn(int(ign.sum()), dtype=x.dtype) * 5
    ours = _build()
    assert ours(x, y).item() == pytest.approx(ours(x2, y).item(), abs=1e-12)
    theirs = _build('DiceLoss', use_sigmoid=False)  # mmseg's, for contrast
    assert theirs(x, y, ignore_index=255).item() != pytest.approx(
        theirs(x2, y, ignore_index=255).item(), abs=1e-6)


def test_gradcheck_through_the_module():
    x, y = _batch(2)
    x = x[:1, :, :3, :4].clone().requires_grad_(True)
    y = y[:1, :3, :4]
    loss = _build()
    assert torch.autograd.gradcheck(lambda z: loss(z, y), (x, ))
