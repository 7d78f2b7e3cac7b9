"""What the benchmark scripts share: a batch that looks like segmentation,
interleaved timing, peak memory, a model's train step, and a record of what
ran where.

Nothing here is measured by itself; benchmarks/README.md says which script
measures what.
"""
from __future__ import annotations

import copy
import gc
import math
import os
import platform
import random
import statistics
import time
from datetime import date
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from torch import Tensor

#: stride of the model's logits before they are upsampled (DeepLab: 8)
LOGIT_STRIDE = 8


# ---------------------------------------------------------------------------
# inputs
# ---------------------------------------------------------------------------
def voronoi_labels(batch: int, height: int, width: int, num_classes: int,
                   classes_per_image: int = 12, regions: int = 24,
                   ignore_frac: float = 0.05,
                   generator: Optional[torch.Generator] = None
                   ) -> Tuple[Tensor, Tensor]:
    """Label maps made of Voronoi regions, as a segmentation map is made of
    segments.

    Each image draws ``classes_per_image`` of the ``num_classes`` classes and
    ``regions`` seed points; every pixel takes its nearest seed's region, and
    each region one of the image's classes with skewed odds (a few classes
    cover most of the image, as stuff classes do). The ``ignore_frac`` of
    pixels nearest to a region boundary get the ignore label 255 (unlabelled
    pixels sit on boundaries in COCO-Stuff's annotations).

    Returns:
        ``(labels, region_class)``: (B, H, W) long with 255 at ignored pixels,
        and (B, H, W) the class of each pixel's region (no ignore label).
    """
    g = generator
    ys = torch.arange(height, dtype=torch.float32).view(1, -1, 1)
    xs = torch.arange(width, dtype=torch.float32).view(1, 1, -1)
    region_class = torch.empty(batch, height, width, dtype=torch.long)
    margin = torch.empty(batch, height, width)
    k = min(num_classes, classes_per_image)
    for b in range(batch):
        classes = torch.randperm(num_classes, generator=g)[:k]
        odds = torch.rand(k, generator=g)**3 + 1e-2
        seed_cls = classes[torch.multinomial(odds, regions, True,
                                             generator=g)]
        sy = torch.rand(regions, 1, 1, generator=g) * height
        sx = torch.rand(regions, 1, 1, generator=g) * width
        d = (ys - sy)**2 + (xs - sx)**2                      # (R, H, W)
        two = d.topk(min(2, regions), dim=0, largest=False)
        region_class[b] = seed_cls[two.indices[0]]
        # distance to the boundary with the second-nearest region
        margin[b] = (two.values[-1].sqrt() - two.values[0].sqrt()) \
            if regions > 1 else float('inf')
    labels = region_class.clone()
    if ignore_frac > 0:
        cut = torch.quantile(margin.flatten()[:2**24].float(),
                             min(1.0, ignore_frac))
        labels[margin <= cut] = 255
    return labels, region_class


def segmentation_logits(region_class: Tensor, num_classes: int,
                        noise: float = 1.0, margin: Tuple[float, float] = (
                            3.0, 10.0), confusion: float = 14.0,
                        generator: Optional[torch.Generator] = None
                        ) -> Tensor:
    """Logits like a segmentation model's: computed at 1/8 resolution and
    upsampled bilinearly (as DeepLab's decoder output is), each region's
    class raised by a margin drawn per pixel block, one other class of the
    image raised by another (the class the model confuses it with), on top
    of Gaussian noise. At 2 x 171 x 256 x 256 with the defaults about 73 %
    of the labelled pixels are right, the mean top probability is 0.65 and
    a pixel has about one class with ``p > sigmoid(-1)`` (``input_stats``):
    roughly a DeepLab model's logits early in its COCO-Stuff training.

    Args:
        region_class (Tensor): (B, H, W) class of each pixel's region.

    Returns:
        Tensor: (B, C, H, W) float32.
    """
    g = generator
    B, H, W = region_class.shape
    h = max(1, math.ceil(H / LOGIT_STRIDE))
    w = max(1, math.ceil(W / LOGIT_STRIDE))
    low = region_class[:, LOGIT_STRIDE // 2::LOGIT_STRIDE,
                       LOGIT_STRIDE // 2::LOGIT_STRIDE][:, :h, :w]
    h, w = low.shape[1:]
    z = noise * torch.randn(B, num_classes, h, w, generator=g)
    lo, hi = margin
    m = lo + (hi - lo) * torch.rand(B, 1, h, w, generator=g)
    z.scatter_add_(1, low.unsqueeze(1), m)
    # the confused class: another class present in the same image
    other = low.flatten(1)[torch.arange(B).unsqueeze(1),
                           torch.randint(h * w, (B, h * w), generator=g)]
    other = other.view(B, 1, h, w)
    c = confusion * torch.rand(B, 1, h, w, generator=g)
    z.scatter_add_(1, other, torch.where(other == low.unsqueeze(1), 0.0, c))
    return F.interpolate(z, size=(H, W), mode='bilinear',
                         align_corners=False).contiguous()


def make_batch(shape: Sequence[int], seed: int = 0,
               classes_per_image: int = 12, regions: int = 24,
               ignore_frac: float = 0.05) -> Tuple[Tensor, Tensor]:
    """``(logits, labels)`` of shape ``(B, C, H, W)`` / ``(B, H, W)`` on the
    CPU (:func:`voronoi_labels`, :func:`segmentation_logits`)."""
    B, C, H, W = shape
    g = torch.Generator().manual_seed(seed)
    labels, region_class = voronoi_labels(B, H, W, C, classes_per_image,
                                          regions, ignore_frac, g)
    return segmentation_logits(region_class, C, generator=g), labels


@torch.no_grad()
def input_stats(logits: Tensor, labels: Tensor) -> dict:
    """What the batch looks like: pixel accuracy and mean top probability
    over the labelled pixels, classes per image, the ignored fraction, and
    the mean number of classes per pixel with ``p > sigmoid(-1)`` (the
    entries the default's sparse hinge evaluates)."""
    valid = labels != 255
    p = logits.float().softmax(1)
    top, arg = p.max(1)
    n_valid = valid.sum().clamp(min=1)
    per_image = [len(torch.unique(lab[lab != 255])) for lab in labels]
    active = (p > 1 / (1 + math.e)).sum(1).float()
    return dict(pixel_acc=float(((arg == labels) & valid).sum() / n_valid),
                mean_top_prob=float(top[valid].mean()) if valid.any() else 0,
                classes_per_image=statistics.mean(per_image),
                ignored=float(1 - valid.float().mean()),
                active_per_pixel=float(active.mean()))


# ---------------------------------------------------------------------------
# timing and memory
# ---------------------------------------------------------------------------
def sync(device) -> None:
    if torch.device(device).type == 'cuda':
        torch.cuda.synchronize()


def minor_faults() -> int:
    """Minor page faults of this process so far (0 where not available)."""
    try:
        import resource
        return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    except (ImportError, OSError):
        return 0


def interleaved(steps: Dict[str, Callable[[], None]], reps: int, warmup: int,
                device, seed: int = 0
                ) -> Tuple[Dict[str, List[float]], Dict[str, List[int]]]:
    """Seconds (and minor page faults) of every step, repetition by
    repetition: each repetition runs every step once, in a freshly shuffled
    order, so that a drift of the machine hits every step alike. The
    garbage collector runs between steps, never inside one."""
    names = list(steps)
    rng = random.Random(seed)
    for _ in range(warmup):
        for n in names:
            steps[n]()
            sync(device)
    times: Dict[str, List[float]] = {n: [] for n in names}
    faults: Dict[str, List[int]] = {n: [] for n in names}
    for _ in range(reps):
        order = names[:]
        rng.shuffle(order)
        for n in order:
            gc.collect()
            gc.disable()
            try:
                sync(device)
                f0 = minor_faults()
                t0 = time.perf_counter()
                steps[n]()
                sync(device)
                times[n].append(time.perf_counter() - t0)
                faults[n].append(minor_faults() - f0)
            finally:
                gc.enable()
    return times, faults


def summary(seconds: List[float]) -> dict:
    """Median and quartiles in ms."""
    ts = sorted(seconds)
    q = statistics.quantiles(ts, n=4) if len(ts) >= 4 else [ts[0], 0, ts[-1]]
    return dict(median_ms=statistics.median(ts) * 1e3, q1_ms=q[0] * 1e3,
                q3_ms=q[2] * 1e3)


def peak_bytes(fn: Callable[[], None], device) -> float:
    """Peak of the memory allocated during ``fn()`` above what was allocated
    before it: ``torch.cuda.max_memory_allocated`` on a GPU; on the CPU the
    running sum of the allocations and frees that the PyTorch profiler
    records (one extra untimed call)."""
    if torch.device(device).type == 'cuda':
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        fn()
        torch.cuda.synchronize()
        return float(torch.cuda.max_memory_allocated() - base)
    from torch.profiler import ProfilerActivity, profile
    with profile(activities=[ProfilerActivity.CPU],
                 profile_memory=True) as prof:
        fn()
    # op events carry their own allocations minus frees; '[memory]' events
    # are the frees and allocations outside any op. Their running sum in
    # time order is the live size.
    deltas = []
    for e in prof.events():
        d = e.cpu_memory_usage if e.name == '[memory]' else \
            e.self_cpu_memory_usage
        if d:
            deltas.append((e.time_range.start, d))
    live = peak = 0
    for _, d in sorted(deltas, key=lambda t: t[0]):
        live += d
        peak = max(peak, live)
    return float(peak)


def pin_cpu_allocator() -> bool:
    """Serve every CPU allocation below 1 GiB from glibc's heap and never
    trim the heap (``mallopt``; a trim threshold of -1 disables trimming),
    so that a freed buffer is reused rather than mapped afresh.

    Why: glibc maps each buffer above its threshold (at most 32 MiB) anew
    and pays its page faults on first touch; at 2 x 171 x 256 x 256 every
    (N, C) buffer is 90 MB, and which loss pays the faults would depend on
    the allocation history of the process; and a trim after a train step
    (whose activations are far larger) would hand the heap back before the
    next loss. Pinned, every step runs on reused memory, as PyTorch's
    caching allocator gives on a GPU (``minor_faults`` in the JSON: about
    0 per call). Returns
    False where it does not apply (not Linux with glibc).
    """
    import ctypes
    import ctypes.util
    name = ctypes.util.find_library('c')
    if platform.system() != 'Linux' or not name:
        return False
    try:
        libc = ctypes.CDLL(name)
        m_trim_threshold, m_mmap_threshold = -1, -3   # <malloc.h>
        return bool(libc.mallopt(m_mmap_threshold, 1 << 30)) and \
            bool(libc.mallopt(m_trim_threshold, -1))
    except (OSError, AttributeError):
        return False


def setup_device(device: str, threads: int, system_malloc: bool) -> dict:
    """Threads and allocator of a CPU run; what was set."""
    dev = torch.device(device)
    pinned = False
    if dev.type == 'cpu':
        torch.set_num_threads(threads)
        pinned = not system_malloc and pin_cpu_allocator()
    return dict(threads=torch.get_num_threads() if dev.type == 'cpu'
                else None, cpu_allocator_pinned=pinned)


def cpu_name() -> str:
    """The CPU's model name (``/proc/cpuinfo``), else the platform's."""
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(device) -> dict:
    """What ran where and when (for the JSON and the tables)."""
    dev = torch.device(device)
    return dict(
        date=date.today().isoformat(), device=str(dev),
        device_name=(torch.cuda.get_device_name(dev) if dev.type == 'cuda'
                     else cpu_name()),
        cpu_count=os.cpu_count(), torch=torch.__version__,
        platform=platform.platform(),
        loadavg=list(os.getloadavg()) if hasattr(os, 'getloadavg') else None)


# ---------------------------------------------------------------------------
# a model's train step
# ---------------------------------------------------------------------------
def _sync_bn_to_bn(cfg):
    """Every ``SyncBN`` of a config tree as ``BN`` (one process)."""
    if isinstance(cfg, dict):
        return {k: ('BN' if k == 'type' and v == 'SyncBN' else
                    _sync_bn_to_bn(v)) for k, v in cfg.items()}
    if isinstance(cfg, (list, tuple)):
        return type(cfg)(_sync_bn_to_bn(v) for v in cfg)
    return cfg


def build_model(config: str, device, extra_loss: Optional[dict] = None,
                ce_only: bool = False, seed: int = 0):
    """``(model, optimizer, num_classes)`` of an mmseg config for a train
    step in one process: no pretrained weights (``model.pretrained=None``,
    no backbone ``init_cfg``), SyncBN as BN, SGD (momentum 0.9).

    Args:
        config (str): mmseg config file.
        extra_loss (dict, optional): Loss config appended to the decode
            head's ``loss_decode`` (``num_classes`` is filled in for
            ``DualIoULoss``).
        ce_only (bool): Replace the decode head's losses by cross-entropy
            first (the baseline of a config that has a regularizer).
    """
    from mmengine.config import Config
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules

    import segreg  # noqa: F401  (registers segreg's losses)
    register_all_modules(init_default_scope=True)
    cfg = Config.fromfile(config)
    mcfg = _sync_bn_to_bn(copy.deepcopy(cfg.model.to_dict()))
    mcfg.pop('data_preprocessor', None)
    mcfg['pretrained'] = None
    if isinstance(mcfg.get('backbone'), dict):
        mcfg['backbone'].pop('init_cfg', None)
    head = mcfg['decode_head']
    num_classes = head['num_classes']
    if ce_only:
        head['loss_decode'] = [dict(type='CrossEntropyLoss',
                                    use_sigmoid=False, loss_weight=1.0,
                                    avg_non_ignore=True)]
    if extra_loss is not None:
        losses = head['loss_decode']
        losses = list(losses) if isinstance(losses, (list, tuple)) \
            else [losses]
        extra = dict(extra_loss)
        if extra.get('type') == 'DualIoULoss':
            extra.setdefault('num_classes', num_classes)
        head['loss_decode'] = losses + [extra]
    torch.manual_seed(seed)
    model = MODELS.build(mcfg).to(device).train()
    opt = torch.optim.SGD(model.parameters(), lr=1e-4, momentum=0.9)
    return model, opt, num_classes


def model_inputs(batch: int, height: int, width: int, num_classes: int,
                 device, seed: int = 1):
    """Images (B, 3, H, W) and SegDataSamples with Voronoi label maps."""
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample
    g = torch.Generator().manual_seed(seed)
    labels, _ = voronoi_labels(batch, height, width, num_classes,
                               generator=g)
    img = torch.randn(batch, 3, height, width, generator=g).to(device)
    samples = []
    for b in range(batch):
        ds = SegDataSample()
        ds.gt_sem_seg = PixelData(data=labels[b:b + 1].to(device))
        ds.set_metainfo(dict(img_shape=(height, width),
                             pad_shape=(height, width)))
        samples.append(ds)
    return img, samples


def train_step(model, opt, img, samples, autocast: bool = False) -> None:
    """Forward, the decode (and auxiliary) heads' losses, backward, SGD."""
    opt.zero_grad(set_to_none=True)
    with torch.autocast(device_type=img.device.type, dtype=torch.bfloat16,
                        enabled=autocast):
        losses = model.loss(img, samples)
        total = sum(v for k, v in losses.items() if 'loss' in k)
    total.backward()
    opt.step()
