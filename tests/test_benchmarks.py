"""The benchmark scripts run end to end on tiny shapes and write their JSON
(smoke tests: the timings themselves are not asserted, they are noise)."""
from __future__ import annotations

import importlib.util
import json
import os
import os.path as osp
import subprocess
import sys

from conftest import DEMO_CONFIG, REPO_ROOT


def _load(name):
    path = osp.join(REPO_ROOT, 'benchmarks', f'{name}.py')
    spec = importlib.util.spec_from_file_location(f'bench_{name}', path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_loss_cost_writes_every_loss_with_ratios(tmp_path, capsys):
    bench = _load('loss_cost')
    out = tmp_path / 'loss.json'
    # old names are aliases of the table's names
    losses = ['lovasz', 'dual_iou', 'direct_s1_fast', 'exact_s1_old',
              'exact_s1_fast', 'dual_ascent_s4_fast', 'lovasz_batched',
              'jml', 'dice_masked']
    assert bench.main(['--shape', '2', '5', '16', '16', '--device', 'cpu',
                       '--reps', '2', '--warmup', '1', '--labels',
                       'uniform', '--losses', *losses,
                       '--model-config', DEMO_CONFIG, '--model-input', '2',
                       '32', '32', '--system-malloc', '--out', str(out)]) == 0
    res = json.loads(out.read_text())
    names = {bench.ALIASES.get(n, n) for n in losses}
    assert set(res['losses']) == {'ce', *names}
    assert res['cpu_allocator_pinned'] is False  # --system-malloc
    assert 'proactive_reclaim' in res  # None, or the kernel's DAMON action
    for name, r in res['losses'].items():
        assert r['median_ms'] > 0 and r['peak_mb'] >= 0
        assert r['first_call_s'] > 0
        assert r['minor_faults'] >= 0   # CPU: page faults of a timed call
        assert r['ratio_vs_lovasz'] == r['median_ms'] / \
            res['losses']['lovasz_mmseg']['median_ms']
    assert res['losses']['ce']['ratio_vs_ce'] == 1.0
    # the train step times CE alone and CE + each segreg form
    assert set(res['train_step']) == {
        'ce', 'direct_s4_fast', 'direct_s1_fast', 'exact_s1_old',
        'exact_s1_fast', 'dual_ascent_s4_fast'}
    assert 'exact_s1_fast' in capsys.readouterr().out


def test_proactive_reclaim_reads_the_running_damon_schemes(tmp_path):
    bench = _load('loss_cost')
    assert bench.proactive_reclaim(str(tmp_path / 'none')) is None
    for k, state, action in (('0', 'on', 'pageout'), ('1', 'off', 'cold'),
                             ('2', 'on', 'stat')):
        kd = tmp_path / k
        scheme = kd / 'contexts' / '0' / 'schemes' / '0'
        scheme.mkdir(parents=True)
        (kd / 'state').write_text(state + '\n')
        (scheme / 'action').write_text(action + '\n')
    (tmp_path / 'nr_kdamonds').write_text('3\n')
    # kdamond 1 is off, and 'stat' reclaims nothing
    assert bench.proactive_reclaim(str(tmp_path)) == 'damon: pageout'


def test_cpu_allocator_pinning_is_applied_and_recorded(tmp_path):
    """In a fresh process (mallopt changes the whole process): the default
    CPU run pins glibc's allocator and says so in the JSON and the table."""
    out = tmp_path / 'loss.json'
    proc = subprocess.run(
        [sys.executable, osp.join(REPO_ROOT, 'benchmarks', 'loss_cost.py'),
         '--shape', '1', '3', '8', '8', '--device', 'cpu', '--reps', '1',
         '--warmup', '1', '--no-memory', '--losses', 'direct_s1_fast',
         '--out', str(out)], capture_output=True, text=True,
        env=dict(os.environ, PYTHONPATH=REPO_ROOT), timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads(out.read_text())
    assert res['cpu_allocator_pinned'] is True
    assert 'heap-pinned allocator' in proc.stdout


def test_anchor_losses_equal_their_definitions():
    """The local Lovasz (one sort) equals mmseg's per-class form; the masked
    Dice / JML equal a loop over classes."""
    import torch
    from mmseg.models.losses.lovasz_loss import lovasz_softmax
    bench = _load('loss_cost')
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 4, 8, 8, generator=g)
    y = torch.randint(0, 4, (2, 8, 8), generator=g)
    y[0, :2] = 255
    ref = lovasz_softmax(x.softmax(1), y, classes='present', per_image=False,
                         ignore_index=255)
    torch.testing.assert_close(bench.lovasz_batched(x, y), ref,
                               rtol=1e-5, atol=1e-6)
    p = x.float().softmax(1)
    valid = y != 255
    dice, jac = [], []
    for c in range(4):
        pc = p[:, c][valid]
        yc = (y[valid] == c).float()
        if yc.sum() == 0:
            continue
        dice.append(1 - (2 * (pc * yc).sum() + 1) / (pc.sum() + yc.sum() + 1))
        inter = (pc * yc).sum()
        jac.append(1 - (inter + 1) / (pc.sum() + yc.sum() - inter + 1))
    torch.testing.assert_close(bench.dice_masked(x, y),
                               torch.stack(dice).mean())
    torch.testing.assert_close(bench.jaccard_metric_loss(x, y),
                               torch.stack(jac).mean())


def test_train_step_cost_runs_every_arm(tmp_path):
    bench = _load('train_step_cost')
    out = tmp_path / 'step.json'
    res = bench.main(['--config', DEMO_CONFIG, '--input', '2', '32', '32',
                      '--device', 'cpu', '--reps', '1', '--warmup', '0',
                      '--arms', 'direct_s4_fast', 'direct_s1_old',
                      'lovasz_mmseg', '--system-malloc', '--out', str(out)])
    assert json.loads(out.read_text()) == res
    assert set(res['arms']) == {'ce', 'direct_s4_fast', 'direct_s1_old',
                                'lovasz_mmseg'}
    assert res['arms']['ce']['added_vs_ce'] == 0.0
    # paired per repetition: CE over itself is exactly 0
    assert res['arms']['ce']['added_paired'] == 0.0
    for r in res['arms'].values():
        assert r['added_paired_q1'] <= r['added_paired'] <= \
            r['added_paired_q3']
    assert res['cpu_allocator_pinned'] is False  # --system-malloc


def test_gpu_suite_dry_run_writes_every_table(tmp_path):
    """benchmarks/gpu_suite.sh --dry-run: the whole suite, tiny, on CPU."""
    env = dict(os.environ, PYTHON=sys.executable, OMP_NUM_THREADS='1')
    out = tmp_path / 'suite'
    proc = subprocess.run(
        ['bash', osp.join(REPO_ROOT, 'benchmarks', 'gpu_suite.sh'), str(out),
         '--dry-run'], env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in ('loss_fp32', 'loss_bf16', 'train_step', 'attention',
                 'suite'):
        assert (out / f'{name}.json').is_file(), name
    bf16 = json.loads((out / 'loss_bf16.json').read_text())
    assert bf16['autocast'] and bf16['dtype'] == 'bfloat16'
    summary = (out / 'summary.md').read_text()
    for part in ('## Losses', '## Train step', '## Attention',
                 'direct_s4_fast', 'lovasz_mmseg'):
        assert part in summary


def test_gpu_suite_says_what_is_missing(tmp_path):
    proc = subprocess.run(['bash', osp.join(REPO_ROOT, 'benchmarks',
                                            'gpu_suite.sh')],
                          capture_output=True, text=True)
    assert proc.returncode == 2 and 'usage' in proc.stderr


def test_attention_cost_runs_a_tiny_sweep(tmp_path):
    bench = _load('attention_cost')
    out = tmp_path / 'att.json'
    ret = bench.main(['--tokens', '64', '--landmarks', '16', '--heads', '2',
                      '--head-dims', '8', '--device', 'cpu', '--repeats',
                      '1', '--methods', 'sdpa', 'nystrom', '--out',
                      str(out)])
    res = json.loads(out.read_text())
    assert res == ret  # main returns what it wrote
    assert {r['method'] for r in res['rows']} == {'sdpa', 'nystrom'}
    assert set(res['speedup_over_sdpa']) == {'64'}


def test_dist_loss_cost_dry_run_counts_bytes(tmp_path):
    """Two gloo ranks on the CPU: every loss x world in the JSON, no bytes
    at world 1, and the default form's bytes are O(C): the same at local
    batch 1 and 3 (two local shapes of one run)."""
    bench = _load('dist_loss_cost')
    # fork, not the default spawn: the ranks inherit the imports (about 1 s
    # instead of 25 s of importing mmseg in every rank on a loaded 2-core
    # machine); the spawn path is the one `python benchmarks/...` runs
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
