"""SMeasureLoss: the paper's image-level F1 Lagrangian, its per-sample state
and the dual step (lambda >= 0, mu over positives only, Pi_C)."""
from __future__ import annotations

import pytest
import torch

import segreg  # noqa: F401
from mmseg.registry import MODELS


def _samples(idx, labels=None):
    from mmseg.structures import SegDataSample
    out = []
    for k, i in enumerate(idx):
        ds = SegDataSample()
        meta = dict(sample_idx=int(i))
        if labels is not None:
            meta['size_label'] = int(labels[k])
        ds.set_metainfo(meta)
        out.append(ds)
    return out


def _loss(**kw):
    cfg = dict(type='SMeasureLoss', num_classes=3, num_samples=10,
               pool_size=(2, 2), loss_weight=1.0)
    cfg.update(kw)
    return MODELS.build(cfg)


def test_build_and_contract():
    loss = _loss()
    assert loss.loss_name == 'loss_smeasure'
    names = dict(loss.named_parameters())
    assert {'score_head.weight', 'smeasure_lp.tau', 'smeasure_lp.eps',
            'smeasure_lp.w'} <= set(names)
    assert names['smeasure_lp.tau'].shape == (10, )
    buffers = dict(loss.named_buffers())
    assert buffers['lambda_'].shape == (10, ) and buffers['mu'].dim() == 0
    logits, label = torch.randn(2, 3, 4, 4), torch.zeros(2, 4, 4).long()
    with pytest.raises(RuntimeError, match='DualAscentHook'):
        loss(logits, label)  # no data samples handed over
    with pytest.raises(IndexError, match='num_samples'):
        loss(logits, label, data_samples=_samples([3, 10], [0, 1]))
    with pytest.raises(KeyError, match='SizeLabel'):
        loss(logits, label, data_samples=_samples([3, 4]))


def test_lagrangian_value_and_gradients():
    torch.manual_seed(0)
    loss = _loss(num_positives=4, beta=1.0)
    lp = loss.smeasure_lp
    with torch.no_grad():
        lp.tau.copy_(torch.linspace(0.0, 0.9, 10))
        lp.eps.fill_(0.3)
        lp.w.fill_(2.0)
        loss.lambda_.copy_(torch.linspace(0.1, 1.0, 10))
        loss.mu.fill_(0.5)
    logits = torch.randn(3, 3, 4, 4, requires_grad=True)
    idx, y = [1, 5, 7], [1, 0, 1]
    out = loss(logits, torch.zeros(3, 4, 4).long(),
               data_samples=_samples(idx, y))
    f = loss.image_scores(logits).detach()
    yy = torch.tensor(y, dtype=torch.float32)
    tau, lam = lp.tau.detach()[idx], loss.lambda_[idx]
    neg = torch.relu(0.3 + 2.0 * f) * (1 - yy)
    pos = (0.5 * tau + lam * (tau - 2.0 * f)) * yy
    expected = (4 / 10) * 0.3 - 0.5 / 10 + (neg + pos).mean()
    assert out.item() == pytest.approx(expected.item(), rel=1e-5)
    out.backward()
    assert logits.grad.abs().sum() > 0
    assert loss.score_head.weight.grad.abs().sum() > 0
    g = lp.tau.grad
    assert (g[[0, 2, 3, 4, 6, 8, 9]] == 0).all()  # not in the batch
    assert g[5] == 0  # a negative image has no tau term
    assert g[1] != 0 and g[7] != 0
    assert lp.eps.grad != 0 and lp.w.grad != 0
    # the batch's labels and raw scores are remembered per sample
    assert loss.sample_label[idx].tolist() == y
    assert torch.allclose(loss.sample_score[idx], f)
    assert (loss.sample_label[[0, 2]] == -1).all()


def test_dual_step_lambda_nonnegative_mu_over_positives_projection():
    loss = _loss()
    lp = loss.smeasure_lp
    with torch.no_grad():
        loss.sample_label.copy_(torch.tensor([1, 1, 0, 0, 1, -1, 0, 1, 0,
                                              0], dtype=torch.int8))
        loss.sample_score.copy_(torch.tensor([5., -5., 0, 0, 0.1, 0, 0, 9.,
                                              0, 0]))
        lp.tau.copy_(torch.tensor([0.4, 0.9, 100., 100., -0.2, 50., 7., 0.1,
                                   3., 3.]))
        lp.eps.fill_(-0.1)
        lp.w.fill_(1.0)
        loss.lambda_.fill_(0.01)
    pos = loss.sample_label == 1
    tau_before = lp.tau.detach().clone()
    loss.dual_step(eta_lambda=1.0, eta_mu=0.1)
    # Pi_C on the known positives: tau_i <= eps, eps >= 0
    eps = lp.eps.item()
    assert eps >= 0
    assert (lp.tau[pos] <= eps + 1e-6).all()
    # ... and nothing else moved
    assert torch.equal(lp.tau[~pos], tau_before[~pos])
    expected_tau, expected_eps = segreg.ops.project_tau_eps(
        tau_before[pos], torch.tensor(-0.1))
    assert torch.allclose(lp.tau[pos], expected_tau)
    assert eps == pytest.approx(expected_eps.item())
    # mu's gradient sums tau over the positives only (the negatives' tau of
    # 100 would dominate otherwise)
    assert loss.mu.item() == pytest.approx(
        0.1 * (expected_tau.sum().item() - 1.0), abs=1e-6)
    # lambda <- max(0, lambda + eta (tau - w f)), clipped at 0
    assert (loss.lambda_ >= 0).all()
    slack = expected_tau - loss.sample_score[pos]
    assert torch.allclose(loss.lambda_[pos], (0.01 + slack).clamp(min=0))
    assert loss.lambda_[pos][0] == 0  # slack 0.4 - 5 < 0: clipped
    assert loss.lambda_[pos][1] > 0
    assert (loss.lambda_[~pos] == 0.01).all()
    assert loss.num_dual_steps.item() == 1
    stats = loss.dual_stats()
    assert stats['num_pos'] == 4 and stats['num_seen'] == 9
    assert stats['tau_over_eps'] <= 1e-6


def test_label_from_mask_and_estimated_positives():
    loss = _loss(label_source='mask', size_rule=dict(background_index=None))
    label = torch.zeros(2, 4, 4).long()  # image 0: one big class -> 1
    label[1] = torch.arange(16).reshape(4, 4) % 3  # 3 classes, each 1/3
    label[1, 0, 0] = 255
    loss(torch.randn(2, 3, 4, 4), label, data_samples=_samples([0, 9]))
    assert loss.sample_label[[0, 9]].tolist() == [1, 1]
    label[1] = torch.arange(16).reshape(4, 4)  # 16 classes, none above 5%?
    loss2 = _loss(num_classes=16, label_source='mask',
                  size_rule=dict(background_index=None, threshold=0.07))
    loss2(torch.randn(2, 16, 4, 4), label, data_samples=_samples([0, 9]))
    assert loss2.sample_label[[0, 9]].tolist() == [1, 0]
    # n estimated from the seen labels: 1 of 2 positive -> N / 2
    assert loss2.estimated_num_positives().item() == pytest.approx(5.0)


def test_in_decode_head_and_autocast():
    from mmengine.structures import PixelData
    from mmseg.models.decode_heads import FCNHead
    torch.manual_seed(0)
    head = FCNHead(in_channels=4, channels=4, num_convs=1, num_classes=3,
                   concat_input=False, norm_cfg=None, loss_decode=[
                       dict(type='CrossEntropyLoss', loss_weight=1.0),
                       dict(type='SMeasureLoss', num_classes=3,
                            num_samples=10, pool_size=(4, 4))])
    samples = _samples([2, 6], [1, 0])
    for ds in samples:
        ds.gt_sem_seg = PixelData(data=torch.randint(0, 3, (1, 8, 8)))
        ds.set_metainfo(dict(img_shape=(8, 8), pad_shape=(8, 8)))
    head.loss_decode[1].set_batch_samples(samples)  # as DualAscentHook does
    # at lambda = mu = eps = 0 only negatives with w f > 0 give gradient;
    # after some dual ascent the positives do too
    head.loss_decode[1].lambda_.fill_(1.0)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        losses = head.loss((torch.randn(2, 4, 8, 8), ), samples, train_cfg={})
    assert torch.isfinite(losses['loss_smeasure'])
    losses['loss_smeasure'].backward()
    assert head.conv_seg.weight.grad.abs().sum() > 0
