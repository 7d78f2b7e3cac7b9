"""Under DDP (2 CPU processes, gloo) the pixel losses see the global batch:
value and parameter gradients equal one process on the concatenated batch."""
from __future__ import annotations

import os

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

C = 4
WORLD = 2


def _data():
    g = torch.Generator().manual_seed(0)
    img = torch.randn(4, 3, 6, 5, generator=g)
    label = torch.randint(0, C - 1, (4, 6, 5), generator=g)  # class 3 absent
    label[3, :, :] = torch.where(label[3] == 0, torch.full_like(label[3], 1),
                                 label[3])  # class 0 missing on an image
    # a fixed logit prior that makes some class LPs feasible, others not
    prior = 2.5 * torch.nn.functional.one_hot(label, C).permute(0, 3, 1, 2)
    prior[:, 2] -= 2.0
    label[2:, :2] = 255  # rank 1 has fewer valid pixels (padding path)
    return img, label, prior.float()


class _Net(torch.nn.Module):
    def __init__(self, loss_cfg):
        super().__init__()
        import segreg  # noqa: F401
        from mmseg.registry import MODELS
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(3, C, 1)
        self.loss = MODELS.build(loss_cfg)

    def forward(self, img, label, prior):
        logits = self.conv(img) + prior
        return self.loss(logits, label, ignore_index=255)


def _grads(net):
    return {n: p.grad.detach().clone() for n, p in net.named_parameters()
            if p.grad is not None}


def _feasible(net):
    stats = net.loss.last_stats  # forms without an LP: the present classes
    return stats.get('feasible', stats['present'])


def _worker(rank, init_file, loss_cfgs, out_file):
    torch.set_num_threads(1)
    dist.init_process_group('gloo', init_method=f'file://{init_file}',
                            rank=rank, world_size=WORLD)
    try:
        results = []
        for loss_cfg in loss_cfgs:
            net = _Net(loss_cfg)
            ddp = torch.nn.parallel.DistributedDataParallel(net)
            img, label, prior = _data()
            sl = slice(2 * rank, 2 * rank + 2)
            value = ddp(img[sl], label[sl], prior[sl])
            value.backward()
            results.append(dict(value=value.detach(), grads=_grads(net),
                                feasible=_feasible(net)))
        if rank == 0:
            torch.save(results, out_file)
    finally:
        dist.destroy_process_group()


# every pixel (sample_stride=1): each rank would draw its own phase
LOSSES = [
    dict(type='DualIoULoss', num_classes=C, solver='exact', sample_stride=1),
    dict(type='DualFbetaLoss', num_classes=C, beta=2.0, classes='all',
         solver='exact', sample_stride=1),
    dict(type='DualIoULoss', num_classes=C, normalize='mean',
         solver='exact', sample_stride=1),
    # persistent duals: the global constraint violation, the same on ranks
    dict(type='DualIoULoss', num_classes=C, solver='dual_ascent',
         sample_stride=1),
    dict(type='DualIoULoss', num_classes=C, sample_stride=1),
    # the dataset-level form: all-reduced sums and counts, the same share
    dict(type='DualIoULoss', num_classes=C, solver='dataset',
         sample_stride=1),
    # the running ratio: all-reduced sums, the same running state
    dict(type='DualIoULoss', num_classes=C, solver='ratio',
         sample_stride=1),
    # the rate losses: all-reduced (T, K) rates
    dict(type='PrecisionAtRecallLoss', num_classes=C, target_classes=[0, 2],
         sample_stride=1),
    dict(type='ROCAUCLoss', num_classes=C, target_classes=[1],
         num_anchors=3, sample_stride=1),
]


def test_ddp_equals_single_process_on_concatenated_batch(tmp_path):
    out_file = str(tmp_path / 'rank0.pt')
    init_file = str(tmp_path / 'init')
    # gloo resolves the host name to pick an interface; without DNS that
    # takes 30 s: use the loopback device (both ranks are local)
    os.environ.setdefault('GLOO_SOCKET_IFNAME', 'lo')
    # warm lazy imports before the fork (DDP's constructor imports
    # torch._dynamo, the registry imports mmseg's models on first build)
    import torch._dynamo  # noqa: F401
    for loss_cfg in LOSSES:
        _Net(loss_cfg)
    # fork: the children inherit the imported modules (fast); the parent has
    # no process group and runs torch single-threaded here
    mp.start_processes(_worker, args=(init_file, LOSSES, out_file),
                       nprocs=WORLD, join=True, start_method='fork')
    results = torch.load(out_file)
    for loss_cfg, got in zip(LOSSES, results):
        net = _Net(loss_cfg)
        img, label, prior = _data()
        ref = net(img, label, prior)
        ref.backward()
        feasible = _feasible(net)
        if loss_cfg.get('solver') == 'exact':
            assert feasible.any() and not feasible.all()
        assert torch.equal(got['feasible'], feasible)
        ref_grads = _grads(net)
        assert torch.allclose(got['value'], ref.detach(), atol=1e-5,
                              rtol=1e-5), loss_cfg
        assert set(got['grads']) == set(ref_grads)
        for name, g in ref_grads.items():
            assert g.abs().sum() > 0, (loss_cfg, name)
            assert torch.allclose(got['grads'][name], g, atol=1e-5,
                                  rtol=1e-4), (loss_cfg, name,
                                               got['grads'][name], g)
