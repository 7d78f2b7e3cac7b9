"""LossWarmupHook: the linear ramp of the dual losses' weight, on the loss
modules of a model (also inside a wrapper), stateless across a resume."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
from mmengine.logging import MessageHub
from mmseg.registry import HOOKS, MODELS
from torch import nn

import segreg  # noqa: F401


def _runner(it: int, model: nn.Module):
    hub = MessageHub.get_instance('test_loss_warmup_hook')
    return SimpleNamespace(iter=it, model=model, message_hub=hub)


def _model():
    return nn.ModuleDict(dict(
        ce=MODELS.build(dict(type='CrossEntropyLoss', loss_weight=1.0)),
        dual=MODELS.build(dict(type='DualIoULoss', num_classes=3,
                               loss_weight=2.0))))


def test_ramp_sets_the_weight_and_logs_the_factor():
    hook = HOOKS.build(dict(type='LossWarmupHook', warmup_iters=10,
                            start_factor=0.2))
    model = _model()
    hook.before_train(_runner(0, model))
    seen = []
    for it in (0, 5, 10, 50):
        runner = _runner(it, model)
        hook.before_train_iter(runner, it)
        seen.append(model['dual'].loss_weight)
        assert runner.message_hub.get_scalar(
            'train/loss_warmup_factor').current() == pytest.approx(
                hook.factor(it))
    assert seen == pytest.approx([0.4, 1.2, 2.0, 2.0])
    assert model['ce'].loss_weight == 1.0  # other losses untouched


def test_resume_continues_the_ramp_from_the_configured_weight():
    model = _model()
    hook = HOOKS.build(dict(type='LossWarmupHook', warmup_iters=4))
    hook.before_train(_runner(0, model))
    hook.before_train_iter(_runner(1, model), 1)
    assert model['dual'].loss_weight == pytest.approx(0.5)
    # a new hook on the same (resumed) model at iteration 3: the configured
    # weight is kept on the module, not re-read from the ramped value
    hook2 = HOOKS.build(dict(type='LossWarmupHook', warmup_iters=4))
    hook2.before_train(_runner(3, model))
    hook2.before_train_iter(_runner(3, model), 3)
    assert model['dual'].loss_weight == pytest.approx(1.5)


def test_no_matching_loss_and_bad_arguments_are_errors():
    hook = HOOKS.build(dict(type='LossWarmupHook', warmup_iters=5,
                            loss_types=('LovaszLoss', )))
    with pytest.raises(ValueError, match='LovaszLoss'):
        hook.before_train(_runner(0, _model()))
    for bad in (dict(warmup_iters=0), dict(warmup_iters=5, start_factor=2)):
        with pytest.raises(ValueError):
            HOOKS.build(dict(type='LossWarmupHook', **bad))
