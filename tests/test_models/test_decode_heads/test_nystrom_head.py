"""NystromHead: builds through MODELS, forward on non-square maps and odd
token counts, the c1 decoder, loss and backward on CPU, the demo config."""
from __future__ import annotations

import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmengine.structures import PixelData

import segreg  # noqa: F401
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample
from segreg.models.decode_heads.nystrom_head import NystromHead

REPO = osp.dirname(osp.dirname(osp.dirname(osp.dirname(
    osp.abspath(__file__)))))


def head_cfg(**kw):
    cfg = dict(type='NystromHead', in_channels=24, channels=16, num_heads=2,
               num_landmarks=8, num_classes=5,
               norm_cfg=dict(type='BN', requires_grad=True),
               loss_decode=dict(type='CrossEntropyLoss', avg_non_ignore=True))
    cfg.update(kw)
    return cfg


def samples(b, h, w, num_classes=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(b):
        label = torch.randint(0, num_classes, (1, h, w), generator=g)
        label[:, :2, :3] = 255  # some ignored pixels
        s = SegDataSample(gt_sem_seg=PixelData(data=label))
        s.set_metainfo(dict(img_shape=(h, w), pad_shape=(h, w)))
        out.append(s)
    return out


@pytest.mark.parametrize('hw', [(13, 9), (7, 16), (2, 3)])
def test_forward_non_square_and_small_maps(hw):
    head = MODELS.build(head_cfg())
    assert isinstance(head, NystromHead)
    x = torch.randn(2, 24, *hw)
    out = head([x])
    assert out.shape == (2, 5, *hw) and torch.isfinite(out).all()


def test_context_branch_is_gated_and_contributes():
    torch.manual_seed(0)
    head = MODELS.build(head_cfg(gamma_init=0.5)).eval()
    y = torch.randn(1, 16, 11, 7)
    with torch.no_grad():
        ctx = head.context(y)
        head.gamma.zero_()
        torch.testing.assert_close(head.context(y), y)
    assert not torch.allclose(ctx, y)


def test_c1_decoder_outputs_at_c1_stride():
    head = MODELS.build(head_cfg(c1_in_channels=6, c1_channels=4,
                                 in_index=1))
    c1, c4 = torch.randn(2, 6, 26, 18), torch.randn(2, 24, 13, 9)
    out = head([c1, c4])
    assert out.shape == (2, 5, 26, 18)


def test_loss_and_backward_reach_attention():
    torch.manual_seed(0)
    head = MODELS.build(head_cfg(gamma_init=0.1, in_index=1,
                                 c1_in_channels=6, c1_channels=4))
    inputs = [torch.randn(2, 6, 26, 18), torch.randn(2, 24, 13, 9)]
    losses = head.loss(inputs, samples(2, 52, 36), train_cfg=dict())
    assert set(losses) >= {'loss_ce', 'acc_seg'}
    assert torch.isfinite(losses['loss_ce'])
    losses['loss_ce'].backward()
    for name in ('gamma', 'attn.qkv.weight', 'attn.conv.weight',
                 'attn.proj.weight', 'c1_bottleneck.conv.weight'):
        grad = head.get_parameter(name).grad
        assert grad is not None and grad.abs().sum() > 0, name


def test_demo_config_trains_one_step_on_cpu():
    from mmseg.utils import register_all_modules
    register_all_modules(init_default_scope=True)
    cfg = Config.fromfile(
        osp.join(REPO, 'configs', 'demo',
                 'nystrom_r18-tiny_1xb8-1k_demo-96x96.py'))
    assert cfg.model.decode_head.type == 'NystromHead'
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    data = dict(
        inputs=[torch.randint(0, 255, (3, 80, 112), dtype=torch.uint8)
                for _ in range(2)],
        data_samples=samples(2, 80, 112, num_classes=12))
    data = model.data_preprocessor(data, training=True)
    losses = model(**data, mode='loss')
    total = sum(v for k, v in losses.items() if k.startswith('decode.loss')
                or k.startswith('aux.loss'))
    assert torch.isfinite(total)
    total.backward()
    assert model.decode_head.gamma.grad is not None
