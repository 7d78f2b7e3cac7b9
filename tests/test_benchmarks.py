"""The benchmark scripts run end to end on tiny shapes and write their
results (smoke tests: the timings themselves are not asserted, they are
noise), and the pieces they share do what they say."""
from __future__ import annotations

import glob
import importlib.util
import json
import os
import os.path as osp
import re
import subprocess
import sys

import pytest

from conftest import DEMO_CONFIG, REPO_ROOT

BENCH = osp.join(REPO_ROOT, 'benchmarks')


def _load(name):
    if BENCH not in sys.path:  # the scripts import each other by name
        sys.path.insert(0, BENCH)
    path = osp.join(BENCH, f'{name}.py')
    spec = importlib.util.spec_from_file_location(f'bench_{name}', path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_loss_cost_quick_writes_every_arm_and_the_train_step(tmp_path):
    """Every arm, ratios to CE, the share of the R50-D8 train step, and the
    table; tiny shape, one repetition."""
    bench = _load('loss_cost')
    res = bench.main(['--quick', '--batch', '2', '--classes', '5', '--size',
                      '32', '--reps', '1', '--warmup', '0',
                      '--system-malloc', '--out', str(tmp_path)])
    assert json.loads((tmp_path / 'loss_cost.json').read_text()) == res
    assert list(res['arms']) == bench.ARMS
    assert res['threads'] == 1 and res['cpu_allocator_pinned'] is False
    step = res['train_step']
    assert step['config'].endswith(
        'deeplabv3_r50-d8_4xb4-80k_coco-stuff164k-512x512.py')
    assert step['input'] == [2, 3, 32, 32] and step['median_ms'] > 0
    for name, r in res['arms'].items():
        assert r['median_ms'] > 0 and r['peak_mb'] >= 0, name
        assert r['x_ce'] == r['median_ms'] / res['arms']['ce']['median_ms']
        assert r['pct_of_step'] == pytest.approx(
            100 * r['median_ms'] / step['median_ms'])
    assert res['arms']['ce']['x_ce'] == 1.0
    assert res['arms']['ce']['x_ce_mem'] == 1.0
    table = (tmp_path / 'loss_cost.md').read_text()
    for name in bench.ARMS:
        assert f'(`{name}`)' in table
    assert res['machine']['date'] in table


def test_loss_cost_pins_the_allocator_in_a_fresh_process(tmp_path):
    """mallopt changes the whole process: the default CPU run pins glibc's
    allocator and says so; ``--name`` names the files."""
    proc = subprocess.run(
        [sys.executable, osp.join(BENCH, 'loss_cost.py'), '--quick',
         '--batch', '1', '--classes', '3', '--size', '8', '--reps', '1',
         '--warmup', '0', '--no-model', '--no-memory', '--arms', 'direct_s1',
         '--out', str(tmp_path), '--name', 'x'], capture_output=True,
        text=True, env=dict(os.environ, PYTHONPATH=REPO_ROOT), timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads((tmp_path / 'x.json').read_text())
    assert res['cpu_allocator_pinned'] is True
    assert set(res['arms']) == {'ce', 'direct_s1'}
    assert res['train_step'] is None
    assert res['arms']['ce']['pct_of_step'] is None
    assert (tmp_path / 'x.md').is_file()


def test_plain_arm_is_the_default_loss_in_plain_autograd():
    """``plain_s1`` (segreg.ops.hinge_counts(reference=True)) gives the
    value and the gradient of ``DualIoULoss(sample_stride=1)``."""
    import torch
    from mmseg.registry import MODELS

    import segreg  # noqa: F401
    bench = _load('loss_cost')
    common = _load('common')
    x, y = common.make_batch((2, 7, 24, 24), seed=3)
    x = x.double().requires_grad_()
    loss = MODELS.build(dict(type='DualIoULoss', sample_stride=1))
    ref = loss(x, y, ignore_index=255)
    (g_ref, ) = torch.autograd.grad(ref, x)
    out = bench.plain_direct_loss(x, y, 1)
    (g_out, ) = torch.autograd.grad(out, x)
    torch.testing.assert_close(out.double(), ref)
    torch.testing.assert_close(g_out.double(), g_ref)
    # a quarter of the pixels at the loss's random phase, weighted 4
    loss2 = MODELS.build(dict(type='DualIoULoss', sample_stride=2))
    torch.manual_seed(5)
    ref2 = loss2(x, y, ignore_index=255)
    torch.manual_seed(5)
    torch.testing.assert_close(bench.plain_direct_loss(x, y, 2).double(),
                               ref2)


def test_inputs_look_like_a_segmentation_batch():
    """Voronoi labels: few classes per image, the asked ignore fraction on
    region boundaries; logits right on most but not all pixels."""
    import torch
    common = _load('common')
    x, y = common.make_batch((2, 30, 64, 64), seed=0, classes_per_image=6,
                             ignore_frac=0.1)
    assert x.shape == (2, 30, 64, 64) and y.shape == (2, 64, 64)
    assert x.dtype == torch.float32 and y.dtype == torch.long
    s = common.input_stats(x, y)
    assert s['classes_per_image'] <= 6
    assert abs(s['ignored'] - 0.1) < 0.02
    assert 0.5 < s['pixel_acc'] < 0.98
    # the same seed, the same batch
    x2, y2 = common.make_batch((2, 30, 64, 64), seed=0, classes_per_image=6,
                               ignore_frac=0.1)
    assert torch.equal(x, x2) and torch.equal(y, y2)


def test_model_config_loses_sync_bn():
    common = _load('common')
    cfg = dict(backbone=dict(norm_cfg=dict(type='SyncBN', requires_grad=True)),
               heads=[dict(norm_cfg=dict(type='SyncBN'))], type='X')
    assert common._sync_bn_to_bn(cfg) == dict(
        backbone=dict(norm_cfg=dict(type='BN', requires_grad=True)),
        heads=[dict(norm_cfg=dict(type='BN'))], type='X')


def test_train_step_cost_quick_runs_every_arm(tmp_path):
    bench = _load('train_step_cost')
    out = tmp_path / 'step.json'
    res = bench.main(['--quick', '--config', DEMO_CONFIG, '--input', '2',
                      '32', '32', '--reps', '1', '--warmup', '0', '--arms',
                      'direct_s4', 'direct_s1', 'lovasz', '--system-malloc',
                      '--out', str(out)])
    assert json.loads(out.read_text()) == res
    assert list(res['arms']) == ['ce', 'direct_s4', 'direct_s1', 'lovasz']
    assert res['arms']['ce']['added_vs_ce'] == 0.0
    # paired per repetition: CE over itself is exactly 0
    assert res['arms']['ce']['added_paired'] == 0.0
    for r in res['arms'].values():
        assert r['added_paired_q1'] <= r['added_paired'] <= \
            r['added_paired_q3']
        assert r['peak_mb'] is None  # CPU: not measured
    assert res['cpu_allocator_pinned'] is False  # --system-malloc


def test_train_step_cost_adds_the_loss_to_the_decode_head():
    import torch
    common = _load('common')
    model, _, nc = common.build_model(
        DEMO_CONFIG, 'cpu', extra_loss=dict(type='DualIoULoss'),
        ce_only=True)
    names = [type(m).__name__ for m in model.decode_head.loss_decode]
    assert names == ['CrossEntropyLoss', 'HingeBoundLoss']
    assert model.decode_head.loss_decode[1].num_classes == nc
    assert not any(isinstance(m, torch.nn.SyncBatchNorm)
                   for m in model.modules())


def test_gpu_suite_dry_run_writes_every_table(tmp_path):
    """benchmarks/gpu_suite.sh --dry-run: the whole suite, tiny, on CPU."""
    env = dict(os.environ, PYTHON=sys.executable, OMP_NUM_THREADS='1')
    out = tmp_path / 'suite'
    proc = subprocess.run(
        ['bash', osp.join(BENCH, 'gpu_suite.sh'), str(out), '--dry-run'],
        env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in ('loss_fp32', 'loss_bf16', 'train_step', 'attention',
                 'head_cost', 'suite'):
        assert (out / f'{name}.json').is_file(), name
    fp32 = json.loads((out / 'loss_fp32.json').read_text())
    bf16 = json.loads((out / 'loss_bf16.json').read_text())
    assert bf16['autocast'] and bf16['dtype'] == 'bfloat16'
    gpu_suite = _load('gpu_suite')
    for res in (fp32, bf16):
        assert set(res['arms']) == set(_load('loss_cost').ARMS)
        assert res['train_step']['median_ms'] > 0
    step = json.loads((out / 'train_step.json').read_text())
    assert list(step['arms']) == ['ce'] + gpu_suite.STEP_ARMS
    summary = (out / 'summary.md').read_text()
    for part in ('Loss cost at 2 x 5 x 32 x 32, fp32', 'bf16',
                 '## Train step', '## Attention', '(`direct_s4`)',
                 '(`lovasz`)', 'ce + direct_s1', 'nystrom-mod',
                 '## Decode-head cost', '| 16 (4 x 4) | `nystrom` |'):
        assert part in summary, part


def test_gpu_suite_says_what_is_missing():
    proc = subprocess.run(['bash', osp.join(BENCH, 'gpu_suite.sh')],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and 'usage' in proc.stderr


def test_gpu_suite_full_plan_is_the_coco_stuff_scale():
    suite = _load('gpu_suite')
    full = suite.plan(dry=False)
    assert full['device'] == 'cuda'
    loss = ' '.join(full['loss'])
    assert '--batch 8 --classes 171 --size 512' in loss
    assert 'deeplabv3_r50-d8' in loss
    assert full['step'][full['step'].index('--input') + 1:][:3] == \
        ['8', '512', '512']
    assert full['head'][:3] == ['--tokens', '4096', '16384']


def test_attention_cost_runs_a_tiny_sweep(tmp_path):
    bench = _load('attention_cost')
    out = tmp_path / 'att.json'
    ret = bench.main(['--quick', '--tokens', '64', '--landmarks', '16',
                      '--heads', '2', '--head-dims', '8', '--device', 'cpu',
                      '--methods', 'sdpa', 'nystrom', '--out', str(out)])
    res = json.loads(out.read_text())
    assert res == ret  # main returns what it wrote
    assert {r['method'] for r in res['rows']} == {'sdpa', 'nystrom'}
    assert set(res['speedup_over_sdpa']) == {'64'}
    assert all(r['repeats'] == 1 for r in res['rows'])


def test_head_cost_times_the_shipped_heads_and_writes_the_table(tmp_path):
    """The DeepLabV3+ ASPP head and the Nystrom head of the COCO-Stuff
    configs, on a 4 x 4 c4 map: ratios to the first head, the table."""
    bench = _load('head_cost')
    res = bench.main(['--quick', '--tokens', '16', '--threads', '1',
                      '--device', 'cpu', '--system-malloc',
                      '--out', str(tmp_path)])
    assert json.loads((tmp_path / 'head_cost.json').read_text()) == res
    assert res['heads'] == ['aspp_plus', 'nystrom']
    assert res['configs']['nystrom'].startswith('configs/nystrom/')
    rows = res['tokens']['16']
    assert rows['aspp_plus']['x_time'] == 1.0
    assert rows['nystrom']['x_time'] == pytest.approx(
        rows['nystrom']['median_ms'] / rows['aspp_plus']['median_ms'])
    assert rows['nystrom']['peak_mb'] > 0
    assert res['params']['nystrom'] != res['params']['aspp_plus']
    md = (tmp_path / 'head_cost.md').read_text()
    assert '| 16 (4 x 4) | `nystrom` | ' in md and ' M | ' in md
    with pytest.raises(SystemExit):
        bench.parse_args(['--tokens', '4000'])  # not a square


def test_dist_loss_cost_dry_run_counts_bytes(tmp_path):
    """Two gloo ranks on the CPU: every loss x world in the JSON, no bytes
    at world 1, and the default form's bytes are O(C): the same at local
    batch 1 and 3 (two local shapes of one run)."""
    bench = _load('dist_loss_cost')
    # fork, not the default spawn: the ranks inherit the imports (about 1 s
    # instead of 25 s of importing mmseg in every rank on a loaded 2-core
    # CPU); the spawn path is the one `python benchmarks/...` runs
    bench.build_losses(bench.DEFAULT_LOSSES, 4)
    out = tmp_path / 'dist.json'
    assert bench.main(['--dry-run', '--count-batches', '3', '--start-method',
                       'fork', '--out', str(out)]) == 0
    res = json.loads(out.read_text())
    assert res['worlds'] == [1, 2]
    assert res['world1'] == 'no process group'
    for world in ('1', '2'):
        assert set(res['results'][world]) == set(bench.DEFAULT_LOSSES)
    for name in bench.DEFAULT_LOSSES:
        w1 = res['results']['1'][name]
        assert w1['bytes_per_step'] == 0 and w1['collectives_per_step'] == 0
        assert w1['median_ms'] > 0 and w1['ratio_vs_world1'] == 1.0
    for name in ('direct_s1', 'direct_s4'):
        w2 = res['results']['2'][name]
        assert w2['bytes_per_step'] > 0 and w2['collectives_per_step'] > 0
        assert w2['bytes_min'] == w2['bytes_max']  # the same every step
        growth = res['growth'][name]
        assert growth['bytes_by_batch'] == {'1': w2['bytes_per_step'],
                                            '3': w2['bytes_per_step']}
        assert growth['depends_on_batch'] is False


def test_benchmarks_use_only_what_exists():
    """No option the losses no longer have, nothing imported from tests/."""
    removed = [r"kernel\s*=", r"'compiled'", r'_legacy', r'\btests[/.]',
               r'import conftest', r"_(old|fast|compiled)\b"]
    hits = []
    for path in sorted(glob.glob(osp.join(BENCH, '*.py')) +
                       glob.glob(osp.join(BENCH, '*.sh'))):
        with open(path) as f:
            for number, line in enumerate(f, 1):
                for pattern in removed:
                    if re.search(pattern, line) and \
                            'test_benchmarks' not in line:
                        hits.append(f'{osp.basename(path)}:{number}: '
                                    f'{line.strip()}')
    assert not hits, '\n'.join(hits)
