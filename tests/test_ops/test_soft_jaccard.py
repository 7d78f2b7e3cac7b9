"""segreg.ops.soft_jaccard against independent oracles (torchmetrics, numpy)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torchmetrics.classification import MulticlassJaccardIndex

from segreg.ops.soft_jaccard import (jaccard_metric_loss, pixels_from_logits,
                                     present_classes, soft_counts,
                                     soft_dice_loss, strided_pixels)

C = 5


def _batch(seed: int, B: int = 2, H: int = 9, W: int = 11,
           ignore_frac: float = 0.15):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(B, C, H, W, generator=g, dtype=torch.float64) * 2
    label = torch.randint(0, C - 1, (B, H, W), generator=g)  # class 4 absent
    label[torch.rand(B, H, W, generator=g) < ignore_frac] = 255
    return logits, label


@pytest.mark.parametrize('seed', [0, 1, 2])
def test_one_hot_jml_is_one_minus_torchmetrics_iou(seed):
    logits, label = _batch(seed)
    pred = logits.argmax(1)
    onehot = torch.nn.functional.one_hot(pred, C).permute(0, 3, 1, 2)
    prob, target, keep = pixels_from_logits(onehot.double() * 1e4, label,
                                            None, 255)
    assert torch.allclose(prob, onehot.permute(0, 2, 3, 1).reshape(-1, C)
                          .double())
    loss = jaccard_metric_loss(prob, target, keep, smooth=0.0)
    iou = MulticlassJaccardIndex(num_classes=C, average='none',
                                 ignore_index=255)(pred, label).double()
    present = torch.zeros(C, dtype=torch.bool)
    present[label[label != 255].unique()] = True
    assert not present[C - 1]  # the absent class is not averaged
    # torchmetrics counts in float32
    assert loss.item() == pytest.approx(1 - iou[present].mean().item(),
                                        abs=1e-6)


def test_tp_is_sum_of_min_for_soft_labels_numpy_loop():
    rng = np.random.default_rng(0)
    p = rng.dirichlet(np.ones(C), 40)
    y = rng.dirichlet(np.ones(C) * 0.3, 40)
    w = rng.uniform(0, 2, 40)
    n = soft_counts(torch.from_numpy(p), torch.from_numpy(y),
                    torch.from_numpy(w))
    for c in range(C):
        tp = sum(w[i] * min(p[i, c], y[i, c]) for i in range(40))
        assert n.tp[c].item() == pytest.approx(tp, rel=1e-12)
        assert n.pred[c].item() == pytest.approx(float(w @ p[:, c]))
        assert n.target[c].item() == pytest.approx(float(w @ y[:, c]))


def test_soft_dice_against_numpy_loop():
    logits, label = _batch(3)
    prob, target, keep = pixels_from_logits(logits, label, None, 255)
    got = soft_dice_loss(prob, target, keep, smooth=1e-3).item()
    p = torch.softmax(logits, 1).numpy()
    lab = label.numpy()
    terms = []
    for c in range(C):
        inter = psum = ysum = 0.0
        present = False
        for b in range(lab.shape[0]):
            for i in range(lab.shape[1]):
                for j in range(lab.shape[2]):
                    if lab[b, i, j] == 255:
                        continue
                    yc = float(lab[b, i, j] == c)
                    present |= yc > 0
                    inter += p[b, c, i, j] * yc
                    psum += p[b, c, i, j]
                    ysum += yc
        if present:
            terms.append(1 - (2 * inter + 1e-3) / (psum + ysum + 1e-3))
    assert got == pytest.approx(float(np.mean(terms)), rel=1e-10)


@pytest.mark.parametrize('op', [jaccard_metric_loss, soft_dice_loss])
def test_ignore_pixels_change_nothing(op):
    logits, label = _batch(4)
    ign = label == 255
    assert ign.any()
    other = logits.clone()
    other[ign.unsqueeze(1).expand_as(other)] = 50.0  # anything at all
    a = op(*pixels_from_logits(logits, label, None, 255))
    x = other.clone().requires_grad_(True)
    b = op(*pixels_from_logits(x, label, None, 255))
    assert a.item() == pytest.approx(b.item(), abs=1e-14)
    b.backward()
    assert x.grad[ign.unsqueeze(1).expand_as(x)].abs().max() == 0
    assert x.grad[~ign.unsqueeze(1).expand_as(x)].abs().max() > 0


@pytest.mark.parametrize('op', [jaccard_metric_loss, soft_dice_loss])
def test_gradcheck_float64(op):
    logits, label = _batch(5, B=1, H=4, W=5)
    x = logits.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(
        lambda z: op(*pixels_from_logits(z, label, None, 255)), (x, ))


def test_soft_labels_gradcheck_and_zero_at_equality():
    g = torch.Generator().manual_seed(6)
    z = torch.randn(2, C, 3, 3, generator=g, dtype=torch.float64)
    soft = torch.softmax(torch.randn(2, C, 3, 3, generator=g,
                                     dtype=torch.float64), 1)
    assert torch.autograd.gradcheck(
        lambda x: jaccard_metric_loss(*pixels_from_logits(x, soft, None,
                                                          255)),
        (z.clone().requires_grad_(True), ))
    # the prediction equal to the soft label: J = 1 in every class
    p, y, k = pixels_from_logits(soft.log(), soft, None, 255)
    assert jaccard_metric_loss(p, y, k, smooth=0).item() == pytest.approx(
        0.0, abs=1e-12)


def test_no_present_class_gives_a_zero_that_backprops():
    x = torch.randn(1, C, 2, 2, dtype=torch.float64, requires_grad=True)
    label = torch.full((1, 2, 2), 255)
    loss = jaccard_metric_loss(*pixels_from_logits(x, label, None, 255))
    assert loss.item() == 0.0
    loss.backward()
    assert torch.all(x.grad == 0)
    assert not present_classes(torch.zeros(0, C)).any()


def test_stride_phases_average_to_the_full_counts():
    logits, label = _batch(7, H=12, W=10)
    s = 3
    full = soft_counts(*pixels_from_logits(logits, label, None, 255))
    acc = [torch.zeros(C, dtype=torch.float64) for _ in range(3)]
    phases = [(oy, ox) for oy in range(s) for ox in range(s)]
    for oy, ox in phases:
        x = logits[..., oy::s, ox::s]
        lab = label[..., oy::s, ox::s]
        n = soft_counts(*pixels_from_logits(
            x, lab, torch.full(lab.shape, float(s * s)), 255))
        for a, v in zip(acc, n):
            a += v / len(phases)
    for a, v in zip(acc, full):
        assert torch.allclose(a, v)
    # and strided_pixels draws one of these phases with weight s^2
    g = torch.Generator().manual_seed(0)
    x, lab, w = strided_pixels(logits, label, None, s, generator=g)
    assert torch.all(w == s * s)
    assert any(torch.equal(x, logits[..., oy::s, ox::s])
               and torch.equal(lab, label[..., oy::s, ox::s])
               for oy, ox in phases)


def test_shapes_are_checked():
    with pytest.raises(ValueError, match=r'\(N, C\)'):
        soft_counts(torch.zeros(3, C), torch.zeros(3, C + 1))
