"""The rate-constraint losses: the Lagrangian of each target class against
a numpy loop of its definition, gradients (gradcheck), the dual step, and
the config path (decode head, DualAscentHook)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import segreg  # noqa: F401
from mmseg.registry import MODELS
from segreg.ops import softmax_log_odds

C = 4


def _numpy_lagrangian(typ, s, y, w, t, b, lam, opt):
    """The definition, by loops: positives y == t, negatives other valid."""
    f = s[:, t].reshape(-1)
    lab, wt = y.reshape(-1), w.reshape(-1)
    valid = lab != 255
    pos, neg = valid & (lab == t), valid & (lab != t)
    n, m = wt[pos].sum(), wt[neg].sum()
    vals = []
    for k, bk in enumerate(b):
        tp = sum(wt[i] * min(1.0, f[i] - bk) for i in np.nonzero(pos)[0])
        fp = sum(wt[j] * max(0.0, 1.0 + f[j] - bk) for j in np.nonzero(neg)[0])
        if typ == 'PrecisionAtRecallLoss':
            vals.append(fp / n + lam[k] * (opt - tp / n))
        elif typ == 'RecallAtPrecisionLoss':
            vals.append(-tp / n + lam[k] * (opt * fp - (1 - opt) * tp) / n)
        else:
            vals.append(-tp / n + lam[k] * (fp / m - (k + 0.5) / len(b)))
    return np.mean(vals)


CASES = [('PrecisionAtRecallLoss', dict(recall=0.7), 0.7),
         ('RecallAtPrecisionLoss', dict(precision=0.6), 0.6),
         ('ROCAUCLoss', dict(num_anchors=3), None)]


@pytest.mark.parametrize('typ,opts,opt', CASES, ids=[c[0] for c in CASES])
def test_value_matches_the_definition(typ, opts, opt):
    torch.manual_seed(0)
    loss = MODELS.build(dict(type=typ, target_classes=[1, 3], num_classes=C,
                             sample_stride=1, **opts)).double().eval()
    with torch.no_grad():
        loss.threshold.uniform_(-1, 1)
        loss.dual.uniform_(0.2, 2.0)
    x = torch.randn(2, C, 5, 6, dtype=torch.float64) * 2
    y = torch.randint(0, C, (2, 5, 6))
    y[0, 0] = 255
    w = torch.rand(2, 5, 6, dtype=torch.float64)
    out = loss(x, y, weight=w)
    s = softmax_log_odds(x).detach().numpy()
    ref = np.mean([_numpy_lagrangian(
        typ, np.moveaxis(s, 1, -1).reshape(-1, C), y.numpy(), w.numpy(), t,
        loss.threshold[k].detach().numpy(), loss.dual[k].numpy(), opt)
        for k, t in enumerate((1, 3))])
    assert out.item() == pytest.approx(ref, rel=1e-10)


@pytest.mark.parametrize('typ,opts,opt', CASES, ids=[c[0] for c in CASES])
def test_gradcheck_logits_and_thresholds(typ, opts, opt):
    torch.manual_seed(1)
    loss = MODELS.build(dict(type=typ, target_classes=[2], sample_stride=1,
                             **opts)).double().eval()
    x = (torch.randn(1, C, 3, 4, dtype=torch.float64) * 2).requires_grad_()
    y = torch.randint(0, C, (1, 3, 4))
    y[0, 0, :2] = 2

    def fn(t, b):
        with torch.no_grad():
            loss.threshold.copy_(b)
        return loss(t, y)
    assert torch.autograd.gradcheck(lambda t: loss(t, y), (x, ), eps=1e-6,
                                    atol=1e-5)
    out = loss(x, y)
    g, = torch.autograd.grad(out, loss.threshold)
    h = 1e-6
    with torch.no_grad():
        loss.threshold += h
    up = loss(x, y)
    with torch.no_grad():
        loss.threshold -= 2 * h
    down = loss(x, y)
    assert g.sum().item() == pytest.approx(((up - down) / (2 * h)).item(),
                                           rel=1e-4, abs=1e-7)


def test_dual_step_raises_violated_duals_and_projects_at_zero():
    loss = MODELS.build(dict(type='PrecisionAtRecallLoss', target_classes=[0],
                             recall=0.9, dual_lr=0.5, sample_stride=1))
    loss.train()
    y = torch.randint(0, C, (1, 6, 6))
    bad = torch.zeros(1, C, 6, 6)  # log-odds log(1/3): recall bound < 0.9
    loss(bad, y)
    slack = loss.last_stats['slack']
    assert (slack > 0).all()
    loss.dual_step()
    torch.testing.assert_close(loss.dual, 1.0 + 0.5 * slack)
    good = 20.0 * torch.nn.functional.one_hot(y, C).permute(0, 3, 1, 2)
    for _ in range(40):  # constraint met by far: the dual falls to 0
        loss(good.float(), y)
        loss.dual_step()
    assert loss.dual.item() == 0.0
    # a class absent from the batch: no step
    loss(bad, torch.ones(1, 6, 6, dtype=torch.long))
    loss.dual_step()
    assert loss.dual.item() == 0.0


def test_options_are_checked():
    with pytest.raises(ValueError, match='target_classes'):
        MODELS.build(dict(type='ROCAUCLoss', target_classes=[]))
    with pytest.raises(ValueError, match='num_classes'):
        MODELS.build(dict(type='ROCAUCLoss', target_classes=[4],
                          num_classes=4))
    with pytest.raises(ValueError, match='recall'):
        MODELS.build(dict(type='PrecisionAtRecallLoss', target_classes=[0],
                          recall=1.5))
    with pytest.raises(TypeError, match='classes'):
        MODELS.build(dict(type='ROCAUCLoss', target_classes=[0],
                          classes='all'))


@pytest.mark.parametrize('name', ['p-at-r', 'r-at-p', 'roc-auc'])
def test_config_builds_and_trains_one_step(name, repo_root):
    """The shipped config: the loss in the decode head beside CE, its
    threshold in the optimizer, a finite loss and gradient."""
    import os.path as osp
    from mmengine.config import Config
    cfg = Config.fromfile(osp.join(repo_root, 'configs', 'demo', 'rate',
                                   f'{name}_r18-tiny_demo-96x96.py'))
    assert cfg.rate_metrics['target_classes'] == [9]
    assert any(h['type'] == 'DualAscentHook' for h in cfg.custom_hooks)
    entry = cfg.model.decode_head.loss_decode[1]
    loss = MODELS.build(entry)
    assert loss.targets.tolist() == [9] and loss.num_classes == 12
    loss.train()
    x = torch.randn(2, 12, 16, 16, requires_grad=True)
    y = torch.randint(0, 12, (2, 16, 16))
    out = loss(x, y)
    out.backward()
    assert torch.isfinite(out) and x.grad.abs().sum() > 0
    assert loss.threshold.grad is not None
