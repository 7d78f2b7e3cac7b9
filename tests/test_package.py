"""The package itself: quiet import, the stack check, the install ranges."""
from __future__ import annotations

import glob
import os
import os.path as osp
import re
import subprocess
import sys
import textwrap

import pytest

from conftest import REPO_ROOT


def _python(code: str, **env) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter on this checkout."""
    full = dict(os.environ, PYTHONPATH=REPO_ROOT, OMP_NUM_THREADS='1',
                **env)
    full.pop('PYTHONWARNINGS', None)  # the interpreter's default filters
    return subprocess.run([sys.executable, '-c', textwrap.dedent(code)],
                          capture_output=True, text=True, cwd=REPO_ROOT,
                          env=full, timeout=300)


# ---------------------------------------------------------------- quiet
def test_import_and_every_tool_start_print_nothing():
    """``import segreg`` and importing each tool module (what happens before
    its main runs) write nothing to stdout or stderr."""
    tools = sorted(glob.glob(osp.join(REPO_ROOT, 'tools', '*.py')))
    assert len(tools) >= 8
    proc = _python(f'''
        import importlib.util, sys
        sys.path.insert(0, {osp.join(REPO_ROOT, 'tools')!r})
        import mmengine.config  # what train.py / test.py import first
        import segreg
        for path in {tools!r}:
            name = 'tool_' + path.rsplit('/', 1)[1][:-3]
            spec = importlib.util.spec_from_file_location(name, path)
            mod = sys.modules[name] = importlib.util.module_from_spec(spec)
            spec.loader.exec_module(mod)
        ''')
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout == ''
    assert proc.stderr == ''


def test_real_output_and_warnings_still_show():
    proc = _python('''
        import warnings
        import segreg
        print('after import')
        warnings.warn('a real warning', UserWarning)
        # the same text as mmcv's notice, from elsewhere: not hidden
        warnings.warn('Fail to import ``MultiScaleDeformableAttention`` '
                      'in my code', UserWarning)
        ''')
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == 'after import\n'
    assert 'a real warning' in proc.stderr
    assert 'in my code' in proc.stderr


def test_quiet_stack_import_drops_only_the_fork_notice(capsys):
    from segreg._stack import FORK_NOTICE, quiet_stack_import
    with quiet_stack_import():
        print(FORK_NOTICE)
        print('keep me')
        print(f'{FORK_NOTICE} and more')
    assert capsys.readouterr().out == \
        f'keep me\n{FORK_NOTICE} and more\n'
    with pytest.raises(RuntimeError):  # output kept when the block fails
        with quiet_stack_import():
            print('before the error')
            raise RuntimeError('x')
    assert capsys.readouterr().out == 'before the error\n'


def test_missing_stack_gives_one_clear_message():
    proc = _python('''
        import sys
        sys.modules['mmseg'] = None  # as if mmsegmentation were absent
        import segreg
        ''')
    assert proc.returncode != 0
    last = proc.stderr.strip().splitlines()
    msg = proc.stderr[proc.stderr.rindex('ImportError: mmseg'):]
    assert 'onedl-mmsegmentation' in msg and 'mmsegmentation>=1.2' in msg
    assert "pip install -c constraints.txt -e '.[onedl]'" in msg
    assert 'mmcv-lite' in msg and last


# ---------------------------------------------------------------- install
def _pyproject() -> dict:
    try:
        import tomllib
    except ImportError:  # Python 3.10
        tomllib = pytest.importorskip('tomli')
    with open(osp.join(REPO_ROOT, 'pyproject.toml'), 'rb') as f:
        return tomllib.load(f)


def _constraints() -> dict:
    from packaging.utils import canonicalize_name
    pins = {}
    with open(osp.join(REPO_ROOT, 'constraints.txt')) as f:
        for line in f:
            line = line.split('#', 1)[0].strip()
            if not line:
                continue
            m = re.fullmatch(r'([A-Za-z0-9_.\-]+)==([^\s;]+)', line)
            assert m, f'constraints.txt: not an exact pin: {line!r}'
            pins[canonicalize_name(m.group(1))] = m.group(2)
    return pins


def test_declared_ranges_are_ranges_and_the_pins_satisfy_them():
    """pyproject declares ranges (no ==), the constraints file pins every
    declared package exactly, and every pin lies inside its range (packages
    whose marker excludes this interpreter are not in the lock)."""
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name
    proj = _pyproject()['project']
    reqs = [Requirement(r) for r in proj['dependencies']]
    for extra, items in proj['optional-dependencies'].items():
        reqs += [Requirement(r) for r in items]
    pins = _constraints()
    assert len(reqs) >= 10
    for req in reqs:
        if req.marker is not None and not req.marker.evaluate(
                {'extra': ''}):
            continue  # e.g. tomli on Python < 3.11: not in this lock
        assert not any(s.operator in ('==', '===') for s in req.specifier), \
            f'pyproject.toml pins {req}; declare a range (exact versions ' \
            f'go to constraints.txt)'
        name = canonicalize_name(req.name)
        assert name in pins, f'constraints.txt has no pin for {req.name}'
        assert req.specifier.contains(pins[name], prereleases=True), \
            f'constraints.txt pins {req.name}=={pins[name]}, outside {req}'


def test_the_stack_is_not_a_hard_dependency():
    """`pip install -e .` must not pull a second mmengine / mmcv / mmseg
    distribution into an environment that has the other family."""
    from packaging.requirements import Requirement
    proj = _pyproject()['project']
    hard = {Requirement(r).name.lower() for r in proj['dependencies']}
    assert not {n for n in hard if 'mmengine' in n or 'mmcv' in n or
                'mmseg' in n}
    fork = {Requirement(r).name for r in
            proj['optional-dependencies']['onedl']}
    assert {'onedl-mmengine', 'onedl-mmcv', 'onedl-mmsegmentation'} <= fork


def test_setup_env_installs_with_the_constraints():
    with open(osp.join(REPO_ROOT, 'tools', 'setup_env.sh')) as f:
        text = f.read()
    assert '-c "$ROOT/constraints.txt"' in text
    assert "[dev,onedl]" in text
    assert 'constraints.txt' in text.split('WANT=')[1].split('\n')[0]


# ---------------------------------------------------------------- plain loop
def _readme_block(marker: str) -> str:
    with open(osp.join(REPO_ROOT, 'README.md')) as f:
        text = f.read()
    after = text.split(f'<!-- {marker}', 1)[1]
    return after.split('```python\n', 1)[1].split('```', 1)[0]


def test_readme_plain_pytorch_loop_runs_and_trains():
    """The README's plain-PyTorch snippet runs as written, the regularizer
    sends gradient into the model, and it is the same loss an mmseg config
    gets from ``dict(type='DualIoULoss', num_classes=C)``."""
    import torch
    code = _readme_block('plain-pytorch-example')
    assert 'MODELS' not in code and 'Config' not in code
    ns: dict = {}
    exec(compile(code, 'README.md', 'exec'), ns)
    model, dual_iou = ns['model'], ns['dual_iou']
    images, labels = ns['images'], ns['labels']
    assert torch.isfinite(ns['loss'])
    logits = model(images)
    torch.manual_seed(1)  # the pixel subsample is drawn at random
    reg = dual_iou(logits, labels)
    assert reg.ndim == 0 and torch.isfinite(reg)
    grads = torch.autograd.grad(reg, list(model.parameters()),
                                allow_unused=True)
    assert any(g is not None and g.abs().sum() > 0 for g in grads)
    from mmseg.registry import MODELS
    built = MODELS.build(dict(type='DualIoULoss', num_classes=5))
    torch.manual_seed(1)
    torch.testing.assert_close(built(logits, labels), reg)
    # the 20 steps lowered the training loss below its starting value
    torch.manual_seed(0)
    fresh = torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 3, padding=1), torch.nn.ReLU(),
        torch.nn.Conv2d(16, 5, 1))
    first = torch.nn.functional.cross_entropy(
        fresh(images), labels, ignore_index=255)
    last = torch.nn.functional.cross_entropy(logits, labels,
                                             ignore_index=255)
    assert last < first
