"""Old configs and checkpoints keep working after the split into forms.

The oracle is a frozen copy of the former single class
(``_legacy_dual_metric_loss.py``, this folder). For every DualIoULoss /
DualFbetaLoss entry of every shipped config, and for a grid of option
combinations, the factory (``type='DualIoULoss'``) and the explicit form
(``type='ExactLPLoss'`` ...: the mechanically converted config) give the
value and gradient of the former class on the same batch, and state dicts
load both ways.
"""
from __future__ import annotations

import glob
import os.path as osp

import pytest
import torch
from mmengine.config import Config

import segreg  # noqa: F401
from mmseg.registry import MODELS
from segreg.models.losses import dual_metric_loss

import _legacy_dual_metric_loss as legacy

REPO = osp.dirname(osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))
C = 5


def shipped_loss_entries():
    """(config path, loss dict) of every Dual*Loss in configs/."""
    out = []
    for path in sorted(glob.glob(osp.join(REPO, 'configs', '**', '*.py'),
                                 recursive=True)):
        if '_base_' in path:
            continue
        cfg = Config.fromfile(path).to_dict()
        heads = [cfg.get('model', {}).get(k) or {} for k in
                 ('decode_head', 'auxiliary_head')]
        for head in heads:
            for h in (head if isinstance(head, list) else [head]):
                losses = h.get('loss_decode', [])
                for d in (losses if isinstance(losses, list) else [losses]):
                    if d.get('type') in ('DualIoULoss', 'DualFbetaLoss'):
                        out.append((osp.relpath(path, REPO), dict(d)))
    return out


def convert(entry: dict) -> dict:
    """The mechanical conversion: factory entry -> explicit form entry."""
    d = dict(entry)
    typ = d.pop('type')
    solver = d.pop('solver', 'direct')
    loss_name = d.pop('loss_name', 'loss_dual_iou' if typ == 'DualIoULoss'
                      else 'loss_dual_fbeta')
    cls, kw = dual_metric_loss.resolve_form(solver, d)
    metric = 'iou' if typ == 'DualIoULoss' else 'fbeta'
    return dict(type=cls.__name__, metric=metric, loss_name=loss_name, **kw)


def batch(seed=0, with_weight=True):
    g = torch.Generator().manual_seed(seed)
    label = torch.randint(0, C - 1, (2, 12, 10), generator=g)  # C-1 absent
    label[0, :2] = 255
    onehot = torch.nn.functional.one_hot(label.clamp(max=C - 1), C)
    prior = 3.0 * onehot.permute(0, 3, 1, 2).double()
    prior[:, 1] -= 4.0  # class 1 badly predicted (infeasible LP)
    x = torch.randn(2, C, 12, 10, generator=g, dtype=torch.float64) + prior
    w = torch.rand(2, 12, 10, generator=g, dtype=torch.float64) + 0.5 \
        if with_weight else None
    return x, label, w


def value_and_grads(loss, x, label, w, seed=3):
    x = x.clone().requires_grad_()
    torch.manual_seed(seed)  # the subsampling phase
    out = loss(x, label, weight=w)
    params = [p for p in loss.parameters()]
    grads = torch.autograd.grad(out, [x] + params, allow_unused=True)
    return out.detach(), grads


def legacy_build(entry):
    d = dict(entry)
    cls = getattr(legacy, d.pop('type'))
    return cls(**d)


def assert_same(old, new, x, label, w):
    new.load_state_dict(old.state_dict())  # checkpoints: old -> new
    old.load_state_dict(new.state_dict())  # and back
    vo, go = value_and_grads(old.double(), x, label, w)
    vn, gn = value_and_grads(new.double(), x, label, w)
    torch.testing.assert_close(vn, vo, rtol=1e-10, atol=1e-12)
    assert len(go) == len(gn)
    for a, b in zip(go, gn):
        if a is None or b is None:
            assert a is None or not a.any()
            assert b is None or not b.any()
            continue
        torch.testing.assert_close(b, a, rtol=1e-9, atol=1e-12)


#: the forms the former class had; solver='dataset' is new (no oracle here:
#: tests/test_models/test_losses/test_dataset_dual_loss.py)
LEGACY_SOLVERS = {'direct', 'exact', 'dual_ascent'}
ENTRIES = [(p, e) for p, e in shipped_loss_entries()
           if e.get('solver', 'direct') in LEGACY_SOLVERS]


def test_every_shipped_config_is_found():
    names = {p for p, _ in ENTRIES}
    assert len(names) >= 20  # the demo, COCO and variant configs
    assert {e.get('solver', 'direct') for _, e in ENTRIES} == LEGACY_SOLVERS


@pytest.mark.parametrize('path,entry', ENTRIES,
                         ids=[p for p, _ in ENTRIES])
def test_shipped_config_old_and_new_give_the_same_loss(path, entry):
    entry = dict(entry, num_classes=C)  # our batch has C classes
    x, label, w = batch()
    old = legacy_build(entry)
    assert_same(old, MODELS.build(entry), x, label, w)
    converted = convert(entry)
    # the converted config differs only in the renamed keys (type, solver
    # -> type, metric); dropped keys had no effect on that form
    kept = {k: v for k, v in converted.items()
            if k not in ('type', 'metric', 'loss_name')}
    assert all(entry[k] == v for k, v in kept.items())
    for k in set(entry) - set(kept) - {'type', 'solver', 'loss_name'}:
        assert k == 'learn_scale' and not entry[k] or \
            dual_metric_loss._OWN[k][1] == entry[k], k
    assert_same(old, MODELS.build(converted), x, label, w)


GRID = [
    dict(),
    dict(sample_stride=1, classes='all'),
    dict(sample_stride=2, surrogate='square'),
    dict(sample_stride=1, surrogate='logistic', class_weight=[1, 2, 0, 1, 3]),
    dict(solver='exact', sample_stride=1),
    dict(solver='exact', sample_stride=1, learn_scale=False, init_scale=4.0),
    dict(solver='exact', normalize='mean', sample_stride=1),
    dict(solver='exact', infeasible='shift', term='log', sample_stride=1),
    dict(solver='exact', infeasible='skip', classes=[0, 1, 2]),
    dict(solver='exact', term='inverse', classes='all', sample_stride=1),
    dict(solver='dual_ascent', sample_stride=1),
    dict(solver='dual_ascent', eta_mu=0.3, count_momentum=0.5,
         learn_scale=False),
    # options of another form at their former defaults are accepted
    dict(solver='direct', normalize='sum', term='bound', eta_mu=0.01,
         learn_scale=False, init_scale=1.0, score='log_odds'),
]


@pytest.mark.parametrize('typ', ['DualIoULoss', 'DualFbetaLoss'])
@pytest.mark.parametrize('options', GRID, ids=[str(g) for g in GRID])
@pytest.mark.parametrize('with_weight', [False, True])
def test_option_grid_old_and_new_agree(typ, options, with_weight):
    entry = dict(type=typ, num_classes=C, **options)
    if typ == 'DualFbetaLoss':
        entry['beta'] = 2.0
    x, label, w = batch(seed=len(str(options)), with_weight=with_weight)
    old = legacy_build(entry)
    with torch.no_grad():  # a non-trivial learnt state
        for p in old.parameters():
            p.uniform_(-0.3, 0.3)
    assert_same(old, MODELS.build(entry), x, label, w)
    assert_same(old, MODELS.build(convert(entry)), x, label, w)


@pytest.mark.parametrize('hook', [True, False])
def test_persistent_duals_follow_the_old_trajectory(hook):
    """Training steps: the old forward stepped mu itself; the new form
    steps it in dual_step() (DualAscentHook), or without the hook at the
    next training forward: the same values, mu and count."""
    entry = dict(type='DualIoULoss', num_classes=C, solver='dual_ascent',
                 eta_mu=0.2, sample_stride=2)
    old, new = legacy_build(entry).double(), MODELS.build(entry).double()
    old.train(), new.train()
    for it in range(4):
        x, label, w = batch(seed=it)
        torch.manual_seed(it)
        vo = old(x, label, weight=w)
        torch.manual_seed(it)
        vn = new(x, label, weight=w)
        if hook:
            new.dual_step()
        torch.testing.assert_close(vn, vo, rtol=1e-10, atol=1e-12)
        torch.testing.assert_close(new.count, old.count)
    new.dual_step()
    torch.testing.assert_close(new.mu, old.mu, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize('options,match', [
    (dict(score='margin'), 'score'),
    (dict(term_floor=0.1), 'term_floor'),
    (dict(solver='exact', shift_margin=2.0), 'shift_margin'),
    (dict(normalize='mean'), "solver='exact' only"),
    (dict(eta_mu=0.5), "solver='dual_ascent' / 'dataset' only"),
    (dict(solver='exact', surrogate='square'), "solver='direct' only"),
    (dict(learn_scale=True), 'no effect'),
    (dict(init_scale=3.0), 'init_scale'),
])
def test_options_without_meaning_are_refused_by_name(options, match):
    with pytest.raises(TypeError, match=match):
        MODELS.build(dict(type='DualIoULoss', num_classes=C, **options))
