"""tools/dist_train.sh: torchrun with 2 CPU processes (gloo) trains the demo."""
from __future__ import annotations

import os
import os.path as osp
import socket
import subprocess
import sys

import torch

from conftest import DEMO_CONFIG, REPO_ROOT


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def test_dist_train_two_cpu_processes(tmp_path, demo_cfg_options):
    work = str(tmp_path / 'dist')
    env = dict(os.environ, PORT=str(_free_port()), OMP_NUM_THREADS='1',
               PYTHON=sys.executable)
    proc = subprocess.run(
        ['bash', osp.join(REPO_ROOT, 'tools', 'dist_train.sh'), DEMO_CONFIG,
         '2', '--work-dir', work, '--cfg-options', *demo_cfg_options(2, 2)],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    log = proc.stdout + proc.stderr
    assert 'Distributed launcher: pytorch' in log or 'world_size: 2' in log \
        or "'world_size': 2" in log, log[-2000:]
    ckpt = torch.load(osp.join(work, 'iter_2.pth'), map_location='cpu',
                      weights_only=False)
    assert ckpt['meta']['iter'] == 2
