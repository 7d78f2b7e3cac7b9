"""DatasetDualLoss (``solver='dataset'``): a thin module over
segreg.ops.dataset_lagrangian. Checked against the ops' plain reference
sums, the dual step's formula, and the state it must (and must not) keep."""
import pytest
import torch

from segreg.models.losses import DatasetDualLoss, DualFbetaLoss, DualIoULoss
from segreg.ops import dataset_hinge_sums, dataset_lagrangian, softmax_log_odds

C = 4


def batch(seed=0, B=2, H=5, W=6):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(B, C, H, W, generator=g, dtype=torch.float64)
    label = torch.randint(0, C - 1, (B, H, W), generator=g)  # class 3 absent
    label[0, 0, :3] = 255
    return logits, label


def reference(loss, logits, label, weight=None):
    """The loss from the ops' one-hot reference sums and the module state
    (after the forward's share update)."""
    s = softmax_log_odds(logits)
    eps = loss.log_eps.detach().to(s).exp()
    sums = dataset_hinge_sums(s, label, eps, weight)
    share = (loss.seen_pos / loss.seen_pix).to(s)
    lag = dataset_lagrangian(sums.hit, sums.fp, eps, loss.mu.to(s),
                             share * sums.pixels, loss.beta)
    seen = share > 0
    return lag.value[seen].mean() * loss.loss_weight, lag


@pytest.mark.parametrize('metric', ['iou', 'fbeta'])
def test_forward_equals_reference_before_the_dual_step(metric):
    build = DualIoULoss if metric == 'iou' else \
        (lambda **kw: DualFbetaLoss(beta=2.0, **kw))
    loss = build(num_classes=C, solver='dataset', sample_stride=1,
                 eta_mu=0.05, loss_weight=0.7).double()
    assert isinstance(loss, DatasetDualLoss)
    with torch.no_grad():
        loss.log_eps.copy_(torch.tensor([0.2, -0.3, 0.4, 0.1]))
    seen_pos = torch.zeros(C, dtype=torch.float64)
    seen_pix = 0.0
    for seed in range(3):
        logits, label = batch(seed)
        x = logits.clone().requires_grad_(True)
        mu_before = loss.mu.clone()
        got = loss(x, label)
        g_got, = torch.autograd.grad(got, x)
        # the share is the count over every batch seen, this one included
        valid = label[label != 255]
        seen_pos += torch.bincount(valid, minlength=C).double()
        seen_pix += valid.numel()
        torch.testing.assert_close(loss.seen_pos, seen_pos)
        assert loss.seen_pix.item() == seen_pix
        x2 = logits.clone().requires_grad_(True)
        want, lag = reference(loss, x2, label)
        g_want, = torch.autograd.grad(want, x2)
        torch.testing.assert_close(got, want)
        torch.testing.assert_close(g_got, g_want)
        # the absent class 3 was seen in no batch: no term, and mu_3 stays
        loss.dual_step()
        step = (mu_before + 0.05 * lag.slack).clamp(0, 10.0)
        step[3] = mu_before[3]
        torch.testing.assert_close(loss.mu, step)


def test_a_class_absent_from_the_batch_still_counts():
    """Once seen, a class's negatives are pushed in every batch (the
    dataset-level estimate needs every class), unlike the per-batch forms."""
    loss = DualIoULoss(num_classes=C, solver='dataset', sample_stride=1,
                       eta_mu=0.0)
    logits, label = batch(0)
    label[1] = 3
    loss(logits.float(), label)  # class 3 seen
    loss.dual_step()
    x = torch.full((1, C, 4, 4), 0.0, requires_grad=True)
    with torch.no_grad():
        x[:, 3] = 3.0  # class 3 predicted everywhere, absent from labels
    lab = torch.zeros(1, 4, 4, dtype=torch.long)
    out = loss(x, lab)
    g, = torch.autograd.grad(out, x)
    assert not bool(loss.last_stats['present'][3])
    assert float(loss.last_stats['term'][3]) > 0
    assert g[:, 3].abs().sum() > 0


def test_state_is_checkpointed_and_resumes_exactly():
    a = DualIoULoss(num_classes=C, solver='dataset', sample_stride=1)
    for seed in range(2):
        logits, label = batch(seed)
        a(logits.float(), label)
        a.dual_step()
    state = a.state_dict()
    assert {'log_eps', 'mu', 'seen_pos', 'seen_pix'} <= set(state)
    b = DualIoULoss(num_classes=C, solver='dataset', sample_stride=1)
    b.load_state_dict(state)
    logits, label = batch(5)
    va, vb = a(logits.float(), label), b(logits.float(), label)
    a.dual_step()
    b.dual_step()
    assert torch.equal(va, vb)
    for k in state:
        assert torch.equal(a.state_dict()[k], b.state_dict()[k]), k


def test_non_finite_batch_changes_no_state():
    loss = DualIoULoss(num_classes=C, solver='dataset', sample_stride=1,
                       nonfinite='skip')
    logits, label = batch(0)
    loss(logits.float(), label)
    loss.dual_step()
    before = {k: v.clone() for k, v in loss.state_dict().items()}
    bad = logits.float().clone()
    bad[0, 1, 2, 2] = float('nan')
    out = loss(bad, label)
    loss.dual_step()
    assert out.item() == 0.0 and loss.num_skipped == 1
    for k, v in loss.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_options():
    with pytest.raises(ValueError, match='num_classes'):
        DualIoULoss(solver='dataset')
    with pytest.raises(ValueError, match='mu_max'):
        DualIoULoss(num_classes=C, solver='dataset', mu_max=0)
    with pytest.raises(TypeError, match='count_momentum'):
        DualIoULoss(num_classes=C, solver='dataset', count_momentum=0.5)
    loss = DualIoULoss(num_classes=C, solver='dataset', eta_mu=0.2)
    assert loss.eta_mu == 0.2 and loss.has_duals
