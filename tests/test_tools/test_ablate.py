"""tools/ablate.py: plan, skip-if-done, cluster commands, the full loop,
the dataset presets (named arms, schedules) and the batch-size sweep."""
from __future__ import annotations

import json
import os
import os.path as osp
import shutil
import subprocess
import sys

import pytest

from conftest import DEMO_CONFIG, REPO_ROOT

sys.path.insert(0, osp.join(REPO_ROOT, 'tests', 'test_evaluation'))
from segreg_fake_runs import make_fake_run, make_study_root  # noqa: E402


@pytest.fixture
def ablate(tools_on_path, monkeypatch):
    import ablate
    # counting training pixels runs tools/check_dataset.py on real data;
    # the tests below use fake runs (test_class_pixels_* tests it)
    monkeypatch.setattr(ablate, 'write_class_pixels', lambda *a: None)
    return ablate


def _arms():
    return ['baseline=' + DEMO_CONFIG, 'reg=' + DEMO_CONFIG]


def _prepare(root):
    """baseline seed0 evaluated; seed1 trained only; reg seed0 interrupted."""
    make_fake_run(str(root / 'baseline' / 'seed0'), 0, 0.5, preds=True)
    w = root / 'baseline' / 'seed1'
    w.mkdir(parents=True)
    (w / 'last_checkpoint').write_text(str(w / 'iter_8.pth'))
    (w / 'ablate_run.json').write_text(json.dumps({'train_status': 'done'}))
    w = root / 'reg' / 'seed0'
    w.mkdir(parents=True)
    (w / 'last_checkpoint').write_text(str(w / 'iter_4.pth'))


def _run_slurm_task(tmp_path, script_text: str, task_id: int,
                    train_status: int = 0):
    """Run one array task of a generated sbatch script with a fake
    ``srun`` that echoes its arguments (``SRUN ...`` lines) and exits with
    ``train_status`` for the training step, and a fake ``scontrol`` that
    echoes too; exit 0 asserted."""
    script, fakebin = tmp_path / 'job.sbatch', tmp_path / 'bin'
    script.write_text(script_text)
    fakebin.mkdir(exist_ok=True)
    (fakebin / 'srun').write_text(
        '#!/bin/sh\necho SRUN "$@"\n'
        f'case "$*" in *train.py*) exit {train_status};; esac\n')
    (fakebin / 'scontrol').write_text('#!/bin/sh\necho SCONTROL "$@"\n')
    for name in ('srun', 'scontrol'):
        (fakebin / name).chmod(0o755)
    env = dict(os.environ, SLURM_ARRAY_TASK_ID=str(task_id),
               SLURM_ARRAY_JOB_ID='4242', PATH=f'{fakebin}:/usr/bin:/bin')
    proc = subprocess.run(['bash', str(script)], capture_output=True,
                          text=True, env=env)
    assert proc.returncode == 0, proc.stderr
    return proc


def test_plan_states(ablate, tmp_path):
    _prepare(tmp_path)
    arms = ablate.parse_arms(_arms())
    jobs = ablate.plan(arms, [0, 1], str(tmp_path))
    states = {(j.arm, j.seed): j.state for j in jobs}
    assert states == {('baseline', 0): 'done', ('baseline', 1): 'test',
                      ('reg', 0): 'resume', ('reg', 1): 'train'}
    assert {j.state for j in ablate.plan(arms, [0, 1], str(tmp_path),
                                         force=True)} == {'train'}


def test_dry_run_prints_plan_and_runs_nothing(ablate, tmp_path, capsys):
    _prepare(tmp_path)
    rc = ablate.main(['--arms', *_arms(), '--seeds', '0', '1',
                      '--work-root', str(tmp_path), '--dry-run'])
    out = capsys.readouterr().out
    assert rc == 0
    assert '1 done, 3 to run' in out
    assert 'skip (metrics.json present)' in out
    assert 'resume training' in out and 'tools/compare.py' in out
    assert not osp.exists(tmp_path / 'report')


def test_main_skips_done_pairs_and_builds_the_report(ablate, tmp_path,
                                                     monkeypatch, capsys):
    _prepare(tmp_path)
    calls = []

    def fake_run_job(job, args, index, total):
        calls.append((job.arm, job.seed, job.state))
        make_fake_run(job.work_dir, job.seed, 0.5 if job.arm == 'baseline'
                      else 0.7, preds=job.save_preds)
        return True

    monkeypatch.setattr(ablate, 'run_job', fake_run_job)
    argv = ['--arms', *_arms(), '--seeds', '0', '1', '--work-root',
            str(tmp_path), '--bootstrap', '50']
    assert ablate.main(argv) == 0
    assert sorted(calls) == [('baseline', 1, 'test'), ('reg', 0, 'resume'),
                             ('reg', 1, 'train')]
    out = capsys.readouterr().out
    assert 'reg' in out and 'report.md' in out
    assert osp.isfile(tmp_path / 'report' / 'report.html')
    calls.clear()
    assert ablate.main(argv) == 0  # everything done now: nothing reruns
    assert calls == []
    assert '4 done, 0 to run' in capsys.readouterr().out
    md = open(tmp_path / 'report' / 'report.md').read()
    assert '## Qualitative comparison' in md  # seed 0 saved predictions


def test_failed_pair_gives_exit_1_and_the_report_still_builds(
        ablate, tmp_path, monkeypatch, capsys):
    make_fake_run(str(tmp_path / 'baseline' / 'seed0'), 0, 0.5, preds=True)
    monkeypatch.setattr(ablate, 'run_job', lambda *a: False)
    rc = ablate.main(['--arms', *_arms(), '--seeds', '0', '--work-root',
                      str(tmp_path), '--bootstrap', '0'])
    err = capsys.readouterr().err
    assert rc == 1 and 'FAILED: reg seed 0' in err
    assert osp.isfile(tmp_path / 'report' / 'report.md')


def test_print_commands(ablate, tmp_path, capsys):
    base = ['--arms', *_arms(), '--seeds', '0', '1', '--work-root',
            str(tmp_path), '--cfg-options', 'train_cfg.max_iters=8']
    assert ablate.main(base + ['--print-commands', 'slurm', '--gpus', '4',
                               '--partition', 'gpu']) == 0
    out = capsys.readouterr().out
    assert '#SBATCH --array=0-3' in out and '#SBATCH --gres=gpu:4' in out
    assert '--launcher slurm' in out and 'train_cfg.max_iters=8' in out
    assert '#SBATCH --partition=gpu' in out and 'compare.py' in out
    assert out.startswith('#!/usr/bin/env bash\n')  # clean: can be saved
    # run array task 1 with a stand-in srun that echoes its arguments
    w = tmp_path / 'baseline' / 'seed1'
    w.mkdir(parents=True)
    (w / 'last_checkpoint').write_text('/ck/iter_8.pth')
    proc = _run_slurm_task(tmp_path, out, 1)
    lines = proc.stdout.splitlines()
    assert '--seed 1 --resume --launcher slurm --cfg-options ' \
        'train_cfg.max_iters=8' in lines[0]
    assert '/ck/iter_8.pth --out' in lines[1]
    shutil.rmtree(tmp_path / 'baseline')
    (tmp_path / 'job.sbatch').unlink()
    shutil.rmtree(tmp_path / 'bin')
    assert ablate.main(base + ['--print-commands', 'torchrun', '--gpus',
                               '8']) == 0
    out = capsys.readouterr().out
    assert out.count('dist_train.sh') == 4
    assert '--nproc_per_node=8' in out and '--launcher pytorch' in out
    assert 'last_checkpoint' in out and 'metrics.json' in out
    assert ablate.main(base + ['--print-commands', 'local']) == 0
    out = capsys.readouterr().out
    assert out.count('tools/train.py') == 4 and '--seed 1' in out
    assert not os.listdir(tmp_path)  # nothing ran


def test_bad_arguments(ablate, tmp_path, capsys):
    assert ablate.main(['--arms', 'noequals', '--work-root',
                        str(tmp_path)]) == 2
    assert ablate.main(['--arms', 'a=missing.py']) == 2
    assert 'missing.py' in capsys.readouterr().err
    assert ablate.main(['--arms', 'a=' + DEMO_CONFIG, 'a=' + DEMO_CONFIG]) \
        == 2
    assert ablate.main(['--arms', 'a=' + DEMO_CONFIG, '--baseline', 'x']) \
        == 2


def test_condensed_progress_lines(ablate):
    line = ('11/28 02:12:30 - mmengine - INFO - Iter(train) [  25/1000]  '
            'base_lr: 1e-3 lr: 1e-3  eta: 0:02:00  time: 0.15  '
            'data_time: 0.01  memory: 0  loss: 2.1234  decode.loss_ce: 1.5')
    assert ablate.condense(line) == \
        '    iter 25/1000  loss 2.1234  eta 0:02:00'
    val = ('11/28 - mmengine - INFO - Iter(val) [13/13]    aAcc: 80.1  '
           'mIoU: 40.5  mAcc: 50.0')
    assert 'mIoU 40.5' in ablate.condense(val)
    assert ablate.condense('Iter(val) [ 3/13]  eta: 0:00:01') is None
    assert ablate.condense('random text') is None


def test_parallel_jobs_run_every_pair_once_with_prefixed_progress(
        ablate, tmp_path, monkeypatch, capsys):
    """--jobs 2: every pair once, the report as with one job; each child is
    told its share of the CPUs and its progress lines name the pair."""
    import threading
    seen, lock = [], threading.Lock()
    monkeypatch.delenv('OMP_NUM_THREADS', raising=False)
    monkeypatch.setattr(ablate.os, 'cpu_count', lambda: 8)

    def fake_run_logged(cmd, log_path, verbose, prefix='', threads=None):
        with lock:
            seen.append((prefix, threads))
        work_dir = osp.dirname(log_path)
        if osp.basename(log_path) == 'train.log':
            with open(osp.join(work_dir, 'last_checkpoint'), 'w') as f:
                f.write(osp.join(work_dir, 'iter_8.pth'))
        else:
            seed = int(osp.basename(work_dir)[4:])
            make_fake_run(work_dir, seed, 0.6)
        print(prefix + '    iter 8/8')
        return 0

    monkeypatch.setattr(ablate, 'run_logged', fake_run_logged)
    rc = ablate.main(['--arms', *_arms(), '--seeds', '0', '1', '--work-root',
                      str(tmp_path), '--bootstrap', '0', '--jobs', '2'])
    assert rc == 0
    out = capsys.readouterr().out
    assert sorted(p for p, _ in seen) == sorted(
        f'[{a} s{s}]' for a in ('baseline', 'reg') for s in (0, 1)
        for _ in range(2))  # train + test per pair
    assert {t for _, t in seen} == {4}
    assert '[reg s1]    iter 8/8' in out
    assert osp.isfile(tmp_path / 'report' / 'report.md')
    monkeypatch.setenv('OMP_NUM_THREADS', '3')
    assert ablate._child_threads(2) is None  # the user's setting wins
    assert ablate._child_threads(1) is None
    with pytest.raises(SystemExit):
        ablate.parse_args(['--arms', 'a=b', '--jobs', '0'])


def test_first_seed_saves_predictions(ablate, tmp_path):
    """--save-preds for the preds seed only; such a pair is done only when
    its predictions exist, otherwise it is re-evaluated (not retrained)."""
    arms = ablate.parse_arms(_arms())
    jobs = ablate.plan(arms, [3, 1], str(tmp_path))
    assert [(j.seed, j.save_preds) for j in jobs] == [(3, True), (1, False)] * 2
    cmds = {(j.arm, j.seed): ablate.test_cmd(j, 'ck.pth', []) for j in jobs}
    assert '--save-preds' in cmds[('reg', 3)]
    assert '--save-preds' not in cmds[('reg', 1)]
    assert not any(j.save_preds for j in ablate.plan(arms, [3, 1], str(
        tmp_path), preds_seed=-1))
    make_fake_run(str(tmp_path / 'baseline' / 'seed3'), 3, 0.5)  # no preds
    make_fake_run(str(tmp_path / 'baseline' / 'seed1'), 1, 0.5)
    states = {(j.arm, j.seed): j.state for j in ablate.plan(
        arms, [3, 1], str(tmp_path))}
    assert states[('baseline', 3)] == 'test'
    assert states[('baseline', 1)] == 'done'


def test_print_commands_save_predictions_and_count_pixels(ablate, tmp_path,
                                                           capsys):
    base = ['--arms', *_arms(), '--seeds', '0', '1', '--work-root',
            str(tmp_path)]
    assert ablate.main(base + ['--print-commands', 'slurm']) == 0
    out = capsys.readouterr().out
    assert 'PREDS=(1 0 1 0)' in out and '$SAVEPREDS' in out
    assert 'check_dataset.py' in out and '--train-class-pixels' in out
    assert ablate.main(base + ['--print-commands', 'local']) == 0
    out = capsys.readouterr().out
    assert out.count('--save-preds') == 2
    assert 'seed0/eval/preds_index.json' in out
    assert out.rindex('check_dataset.py') < out.rindex('tools/compare.py')


def test_class_pixels_written_once_and_failure_is_not_fatal(
        tools_on_path, tmp_path, monkeypatch, capsys):
    import ablate
    calls = []

    def fake_call(cmd, stdout=None, stderr=None):
        calls.append(cmd)
        out = cmd[cmd.index('--json') + 1]
        with open(out, 'w') as f:
            json.dump({'reports': []}, f)
        return 0

    monkeypatch.setattr(ablate.subprocess, 'call', fake_call)
    path = ablate.write_class_pixels(DEMO_CONFIG, str(tmp_path), ['a=1'])
    assert path == str(tmp_path / 'train_class_pixels.json')
    assert calls[0][1].endswith('check_dataset.py')
    assert calls[0][3:6] == ['--split', 'train', '--fast']
    assert calls[0][-2:] == ['--cfg-options', 'a=1']
    assert ablate.write_class_pixels(DEMO_CONFIG, str(tmp_path), []) == path
    assert len(calls) == 1  # cached
    monkeypatch.setattr(ablate.subprocess, 'call', lambda *a, **k: 2)
    assert ablate.write_class_pixels(DEMO_CONFIG, str(tmp_path / 'x'),
                                     []) is None
    assert 'frequency bins use the test set' in capsys.readouterr().err


def test_seed_placeholder_in_cfg_options(ablate, tmp_path, capsys):
    """``{seed}`` in a cfg option becomes each run's seed (the fine-tuning
    protocol: load_from=ROOT/ce/seed{seed}/iter_2000.pth), in local, torchrun
    and SLURM commands."""
    opt = 'load_from=/ck/ce/seed{seed}/iter_2000.pth'
    job = ablate.plan([('reg', DEMO_CONFIG)], [2], str(tmp_path),
                      check=False)[0]
    assert 'load_from=/ck/ce/seed2/iter_2000.pth' in ablate.train_cmd(
        job, [opt], resume=False)
    assert 'load_from=/ck/ce/seed2/iter_2000.pth' in ablate.test_cmd(
        job, 'x.pth', [opt])
    base = ['--arms', *_arms(), '--seeds', '0', '3', '--work-root',
            str(tmp_path), '--cfg-options', opt]
    for mode in ('local', 'torchrun'):
        assert ablate.main(base + ['--print-commands', mode]) == 0
        out = capsys.readouterr().out
        assert 'seed0/iter_2000.pth' in out and 'seed3/iter_2000.pth' in out
        assert '{seed}' not in out
    assert ablate.main(base + ['--print-commands', 'slurm']) == 0
    proc = _run_slurm_task(tmp_path, capsys.readouterr().out, 1)
    assert 'load_from=/ck/ce/seed3/iter_2000.pth' in proc.stdout
    assert '{seed}' not in proc.stdout


def test_slurm_array_task_requeues_after_a_preemption(ablate, tmp_path,
                                                      capsys):
    """The array script asks for SIGUSR1 before the limit and requeue; a
    training that exits 75 (checkpoint written) requeues its own task and
    runs no evaluation."""
    _prepare(tmp_path)
    assert ablate.main(['--arms', *_arms(), '--seeds', '0', '1',
                        '--work-root', str(tmp_path),
                        '--print-commands', 'slurm']) == 0
    out = capsys.readouterr().out
    assert '#SBATCH --requeue' in out and '#SBATCH --signal=B:USR1@300' in out
    proc = _run_slurm_task(tmp_path, out, 1, train_status=75)
    assert 'SCONTROL requeue 4242_1' in proc.stdout
    assert 'test.py' not in proc.stdout
    done = _run_slurm_task(tmp_path, out, 1)
    assert 'SCONTROL' not in done.stdout and 'test.py' in done.stdout


def test_ranks_run_training_under_torchrun(ablate, tmp_path):
    job = ablate.plan([('reg', DEMO_CONFIG)], [1], str(tmp_path),
                      check=False)[0]
    cmd = ablate.train_cmd(job, [], resume=False, python='py', ranks=4)
    assert cmd[:5] == ['py', '-m', 'torch.distributed.run', '--standalone',
                       '--nproc_per_node=4']
    assert cmd[-2:] == ['--launcher', 'pytorch']
    import ablate_commands
    assert ablate.train_cmd(job, [], resume=False, python='py')[0:2] == [
        'py', ablate_commands.script_path('train.py')]


def test_allow_new_keys_reaches_train_and_test(ablate, tmp_path, capsys):
    """``--allow-new-keys`` goes with the ``--cfg-options`` of every train
    and test command (local, torchrun, SLURM) and nowhere without it."""
    opt = 'model.decode_head.loss_decode.0.probe=1'
    job = ablate.plan([('reg', DEMO_CONFIG)], [0], str(tmp_path),
                      check=False)[0]
    for new in (False, True):
        tr = ablate.train_cmd(job, [opt], resume=False, allow_new_keys=new)
        te = ablate.test_cmd(job, 'x.pth', [opt], allow_new_keys=new)
        for cmd in (tr, te):
            assert ('--allow-new-keys' in cmd) is new
            assert cmd[cmd.index('--cfg-options') + 1] == opt
    # no cfg option, nothing to allow: the flag is left out
    assert '--allow-new-keys' not in ablate.train_cmd(
        job, [], resume=False, allow_new_keys=True)
    base = ['--arms', *_arms(), '--seeds', '0', '--work-root',
            str(tmp_path), '--cfg-options', opt, '--allow-new-keys']
    for mode in ('local', 'torchrun'):
        assert ablate.main(base + ['--print-commands', mode]) == 0
        lines = [ln for ln in capsys.readouterr().out.splitlines()
                 if 'train.py' in ln or 'test.py' in ln
                 or 'dist_train.sh' in ln]
        assert len(lines) == 4
        assert all('--allow-new-keys' in ln for ln in lines), lines
    assert ablate.main(base + ['--print-commands', 'slurm']) == 0
    proc = _run_slurm_task(tmp_path, capsys.readouterr().out, 0)
    runs = [ln for ln in proc.stdout.splitlines() if ln.startswith('SRUN')]
    assert runs and all('--allow-new-keys' in ln for ln in runs), runs


# ------------------------------------------------------- dataset presets
@pytest.fixture
def presets(tools_on_path):
    import ablate_presets
    return ablate_presets


def test_arms_of_both_datasets_exist_and_variants_are_found(presets):
    demo, aerial = presets.known_arms('demo'), presets.known_arms('aerial')
    for table in (demo, aerial):
        assert {'ce', 'dual_iou', 'lovasz'} <= set(table)
        for cfg in table.values():
            assert osp.isfile(osp.join(REPO_ROOT, cfg)), cfg
    assert 'dual_iou_warmup' in demo and 'dual_iou_direct_stride4' in demo
    assert 'dual_iou_direct' in aerial
    assert 'aerial' in aerial['dual_iou'] and 'aerial' not in demo['dual_iou']
    assert all('aerial' in c for c in aerial.values())
    with pytest.raises(ValueError):
        presets.known_arms('cityscapes')


def test_collage_arms_are_the_realistic_configs_with_the_anchors(presets):
    arms = presets.known_arms('collage')
    assert list(arms)[0] == 'ce'
    assert {'dual_iou', 'lovasz', 'jml', 'jml_mix', 'dice'} <= set(arms)
    for cfg in arms.values():
        assert cfg.startswith('configs/realistic/') and osp.isfile(
            osp.join(presets.REPO, cfg)), cfg


def test_named_arms_defaults_and_options_of_a_dataset(ablate, presets,
                                                      tmp_path, capsys):
    """--dataset: named and NAME=CONFIG arms mixed, its default work root
    and seeds, --iters before the user's --cfg-options (which win)."""
    args = ablate.parse_args(['--dataset', 'aerial'])
    assert args.arms == ['ce', 'dual_iou', 'lovasz']
    assert args.seeds == [0, 1, 2]
    assert args.work_root == osp.join('work_dirs', 'regularizer_experiment',
                                      'aerial')
    assert args.out == osp.join(args.work_root, 'report')
    assert ablate.parse_args(['--arms', 'a=b']).seeds == [0]
    assert ablate.parse_args(['--arms', 'a=b']).work_root == osp.join(
        'work_dirs', 'ablation')
    specs = presets.arm_specs('aerial', ['ce', 'x=some/config.py'])
    assert specs[0].startswith('ce=') and specs[0].endswith(
        'deeplabv3plus_r18-tiny_1xb8-1k_aerial-80x80.py')
    assert specs[1] == 'x=some/config.py'
    assert ablate.main(['--dataset', 'aerial', '--arms', 'ce',
                        'x=' + DEMO_CONFIG, '--iters', '4000', '--seeds',
                        '0', '--cfg-options', 'a=1', '--print-commands',
                        'local']) == 0
    out = capsys.readouterr().out
    train = [ln for ln in out.splitlines() if 'tools/train.py' in ln]
    assert len(train) == 2
    assert all(ln.endswith('--cfg-options train_cfg.max_iters=4000 '
                           'param_scheduler.1.end=4000 a=1') for ln in train)
    assert 'work_dirs/regularizer_experiment/aerial/x/seed0' in out
    assert ablate.main(['--dataset', 'aerial', '--arms', 'ce', 'nope',
                        '--dry-run']) == 2
    assert 'nope' in capsys.readouterr().err
    assert ablate.main(['--arms', 'ce', '--dry-run']) == 2  # no --dataset
    assert 'NAME=CONFIG' in capsys.readouterr().err


def test_dry_run_and_list(ablate, presets, tmp_path, monkeypatch, capsys):
    made = []
    monkeypatch.setattr(presets, 'ensure_data',
                        lambda *a, **k: made.append(a))
    assert ablate.main(['--list-arms']) == 0
    out = capsys.readouterr().out
    assert 'dual_iou_stride4' in out and '--dataset collage:' in out
    assert ablate.main(['--dataset', 'aerial', '--list-arms']) == 0
    out = capsys.readouterr().out
    assert 'jml_mix' in out and 'demo-96x96' not in out
    assert ablate.main(['--dataset', 'demo', '--arms', 'ce', 'dual_iou',
                        '--seeds', '0', '--work-root', str(tmp_path),
                        '--dry-run']) == 0
    out = capsys.readouterr().out
    assert '2 runs (2 arms x 1 seeds)' in out and 'train, then evaluate' in out
    assert made == []  # a dry run generates no data


def test_missing_dataset_is_generated_once(presets, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    calls = []
    assert presets.ensure_data(
        'aerial', [], run=lambda cmd, **kw: calls.append(cmd)) is True
    cmd = calls[0]
    assert cmd[1].endswith('make_demo_data.py')
    assert cmd[cmd.index('--kind') + 1] == 'aerial'
    assert cmd[cmd.index('--out') + 1] == 'data/demo_aerial'
    # not when the user points the configs elsewhere
    assert not presets.ensure_data(
        'demo', ['train_dataloader.dataset.data_root=/x'], run=calls.append)
    (tmp_path / 'data' / 'demo').mkdir(parents=True)
    assert not presets.ensure_data('demo', [], run=calls.append)
    assert len(calls) == 1


def test_batch_and_ranks_keep_the_images_seen(ablate, presets, capsys):
    """--batch / --ranks: iterations, warm-up and intervals x 8 / G, the
    learning rate x sqrt(G / 8) (G = batch x ranks), its own work root; a
    simulated 4 x 2 DDP run has the schedule of batch 8."""
    from mmengine import Config
    cfg = Config.fromfile(osp.join(REPO_ROOT,
                                   presets.known_arms('collage')['ce']))
    opts = dict(o.split('=') for o in presets.schedule_options(cfg, None, 2))
    assert opts['train_dataloader.batch_size'] == '2'
    assert opts['train_cfg.max_iters'] == '8000'
    assert opts['param_scheduler.1.end'] == '8000'
    assert opts['param_scheduler.0.end'] == opts[
        'param_scheduler.1.begin'] == '200'
    assert opts['train_cfg.val_interval'] == '2000'
    assert opts['default_hooks.checkpoint.interval'] == '2000'
    assert float(opts['optim_wrapper.optimizer.lr']) == pytest.approx(1e-3)
    ddp = dict(o.split('=') for o in presets.schedule_options(cfg, None, 2,
                                                              4))
    assert ddp['train_cfg.max_iters'] == '2000'
    assert float(ddp['optim_wrapper.optimizer.lr']) == pytest.approx(2e-3)
    assert presets.schedule_options(cfg, 1000, 4)[1] == \
        'train_cfg.max_iters=2000'
    with pytest.raises(ValueError):
        presets.schedule_options(cfg, None, 0)
    assert ablate.main(['--dataset', 'collage', '--arms', 'ce', 'jml',
                        '--batch', '2', '--ranks', '4', '--seeds', '0',
                        '--print-commands', 'local']) == 0
    out = capsys.readouterr().out
    assert 'work_dirs/regularizer_experiment/collage_b2x4/jml/seed0' in out
    train = [ln for ln in out.splitlines() if 'tools/train.py' in ln]
    assert all('--nproc_per_node=4' in ln and 'train_cfg.max_iters=2000'
               in ln for ln in train) and len(train) == 2
    args = ablate.parse_args(['--dataset', 'collage', '--arms', 'ce'])
    assert args.work_root.endswith('collage')
    assert presets.study_options(DEMO_CONFIG, None, None, 1) == []
    assert ablate.parse_args(['--arms', 'a=b', '--ranks', '2']
                             ).work_root.endswith('ablation_b8x2')
    with pytest.raises(SystemExit):
        ablate.parse_args(['--arms', 'a=b', '--batch', '0'])


# ------------------------------------------------------ batch-size sweep
def test_sweep_writes_the_tables(ablate, tmp_path, capsys):
    big = make_study_root(tmp_path, 'b8', {'ce': [0.5, 0.55], 'reg': [0.7, 0.72]})
    small = make_study_root(tmp_path, 'b2', {'ce': [0.3, 0.35], 'reg': [0.6, 0.7]})
    out = tmp_path / 'out'
    assert ablate.main(['--sweep', f'8={big}', '--sweep', f'2x4={small}',
                        '--arms', 'ce', 'reg', '--out', str(out)]) == 0
    assert 'batch_sweep.png' in capsys.readouterr().out
    for ext in ('md', 'html', 'json', 'png'):
        assert (out / f'batch_sweep.{ext}').is_file()
    res = json.loads((out / 'batch_sweep.json').read_text())
    assert res['labels'] == ['8', '2x4'] and res['baseline'] == 'ce'
    assert not osp.exists(tmp_path / 'b8' / 'report')  # nothing trained


def test_bad_sweep_spec_is_one_line(ablate, tmp_path, capsys):
    assert ablate.main(['--sweep', 'eight', '--arms', 'ce', '--out',
                        str(tmp_path)]) == 2
    assert 'LABEL=ROOT' in capsys.readouterr().err
    assert ablate.main(['--sweep', f'8b={tmp_path}', '--arms', 'ce', '--out',
                        str(tmp_path)]) == 2
    assert 'BxR' in capsys.readouterr().err
    for extra in (['--dry-run'], ['--dataset', 'demo'], []):
        argv = ['--sweep', f'8={tmp_path}', '--arms', 'ce'] + extra
        if extra:
            argv += ['--out', str(tmp_path)]
        with pytest.raises(SystemExit):
            ablate.parse_args(argv)
