"""NystromAttention: registry, exact multi-head attention at m >= n, the
depthwise skip in 1-D and 2-D, non-square maps, gradients, bf16 autocast."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

import segreg  # noqa: F401
from mmseg.registry import MODELS
from segreg.models import NystromAttention


def reference_mha(attn: NystromAttention, x: torch.Tensor) -> torch.Tensor:
    """Exact multi-head softmax attention with the module's weights."""
    b, n, _ = x.shape
    q, k, v = attn.qkv(x).chunk(3, dim=-1)
    q, k, v = (t.reshape(b, n, attn.num_heads, -1).transpose(1, 2)
               for t in (q, k, v))
    w = torch.softmax(q @ k.transpose(-1, -2) / attn.head_dims**0.5, -1)
    return attn.proj((w @ v).transpose(1, 2).reshape(b, n, -1))


def test_builds_from_registry():
    attn = MODELS.build(
        dict(type='NystromAttention', embed_dims=32, num_heads=4,
             num_landmarks=8, pinv_iters=4, conv_kernel_size=5))
    assert isinstance(attn, NystromAttention)
    assert attn.head_dims == 8 and attn.conv.kernel_size == (5, 5)
    assert 'num_landmarks=8' in repr(attn)


@pytest.mark.parametrize('n', [16, 35])
def test_exact_multihead_attention_when_landmarks_cover_tokens(n):
    torch.manual_seed(0)
    attn = NystromAttention(32, num_heads=4, num_landmarks=n,
                            conv_kernel_size=0).eval()
    x = torch.randn(2, n, 32)
    with torch.no_grad():
        torch.testing.assert_close(attn(x), reference_mha(attn, x),
                                   rtol=1e-5, atol=1e-5)


def test_head_dims_and_skip_are_added():
    torch.manual_seed(0)
    attn = NystromAttention(12, num_heads=2, head_dims=5, num_landmarks=64,
                            conv_kernel_size=3).eval()
    x = torch.randn(1, 6 * 4, 12)
    with torch.no_grad():
        v = attn.qkv(x)[..., 20:]  # (B, n, heads * head_dims)
        skip = attn.conv(v.transpose(1, 2).reshape(1, 10, 6, 4))
        skip = skip.flatten(2).transpose(1, 2)
        no_skip = reference_mha(attn, x)
        expected = no_skip + attn.proj(skip) - attn.proj.bias
        torch.testing.assert_close(attn(x, hw=(6, 4)), expected,
                                   rtol=1e-5, atol=1e-5)


def test_sequence_skip_is_1d_conv_along_tokens():
    torch.manual_seed(0)
    attn = NystromAttention(8, num_heads=2, num_landmarks=4,
                            conv_kernel_size=3).eval()
    x = torch.randn(2, 15, 8)
    with torch.no_grad():
        out_seq = attn(x)
        torch.testing.assert_close(out_seq, attn(x, hw=(15, 1)))
        assert not torch.allclose(out_seq, attn(x, hw=(5, 3)))
        # only the middle kernel column acts on an n x 1 map
        attn.conv.weight[..., 0] = 0
        attn.conv.weight[..., 2] = 0
        torch.testing.assert_close(out_seq, attn(x))


@pytest.mark.parametrize('hw', [(5, 7), (9, 2), (13, 11)])
def test_non_square_maps_and_odd_token_counts(hw):
    torch.manual_seed(0)
    attn = NystromAttention(16, num_heads=2, num_landmarks=8)
    x = torch.randn(3, hw[0] * hw[1], 16)
    out = attn(x, hw=hw)
    assert out.shape == x.shape and torch.isfinite(out).all()
    out.sum().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all()
               for p in attn.parameters())


def test_wrong_hw_and_bad_arguments_raise():
    attn = NystromAttention(8, num_heads=2)
    with pytest.raises(ValueError):
        attn(torch.randn(1, 10, 8), hw=(3, 3))
    with pytest.raises(ValueError):
        NystromAttention(10, num_heads=4)
    with pytest.raises(ValueError):
        NystromAttention(8, num_heads=2, conv_kernel_size=4)


def test_gradcheck_float64():
    torch.manual_seed(0)
    attn = NystromAttention(4, num_heads=2, num_landmarks=3, pinv_iters=3,
                            conv_kernel_size=3).double()
    x = torch.randn(1, 10, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: attn(x, hw=(5, 2)), (x, ))


def test_bf16_autocast_cpu():
    torch.manual_seed(0)
    attn = NystromAttention(64, num_heads=4, num_landmarks=16).eval()
    x = torch.randn(2, 20 * 15, 64)
    with torch.no_grad():
        ref = attn(x, hw=(20, 15))
        with torch.autocast('cpu', dtype=torch.bfloat16):
            out = attn(x, hw=(20, 15))
    assert torch.isfinite(out).all()
    err = F.mse_loss(out.float(), ref).sqrt() / ref.pow(2).mean().sqrt()
    assert err < 0.05
