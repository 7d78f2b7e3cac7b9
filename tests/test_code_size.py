"""The package stays lean: few hand-written backwards, short files, few
options per loss, and the default readable in one loss file and one op."""
from __future__ import annotations

import ast
import inspect
import os.path as osp
from pathlib import Path

import pytest

import segreg.models.losses as losses
from segreg.models.losses import PixelMetricLoss

PKG = Path(osp.dirname(osp.dirname(osp.abspath(__file__)))) / 'segreg'


def _function_classes() -> list:
    """``class X(torch.autograd.Function)`` definitions in segreg/."""
    found = []
    for path in PKG.rglob('*.py'):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and any(
                    ast.unparse(b).endswith('autograd.Function')
                    or ast.unparse(b) == 'Function' for b in node.bases):
                found.append(f'{path.relative_to(PKG)}:{node.name}')
    return found


def test_at_most_four_hand_written_autograd_functions():
    found = _function_classes()
    assert 1 <= len(found) <= 4, found


def test_no_package_file_over_400_lines():
    long = {str(p.relative_to(PKG)): n for p in PKG.rglob('*.py')
            if (n := len(p.read_text().splitlines())) > 400}
    assert not long, long


def _options(cls) -> set:
    keys = set()
    for klass in cls.__mro__:
        if klass.__module__.startswith('segreg') and '__init__' in vars(
                klass):
            keys |= set(inspect.signature(klass.__init__).parameters)
    return keys - {'self', 'kwargs', 'args'}


@pytest.mark.parametrize('name', [n for n in losses.__dict__
                                  if inspect.isclass(losses.__dict__[n])
                                  and n.endswith('Loss')])
def test_at_most_twelve_options_per_loss_class(name):
    opts = _options(getattr(losses, name))
    assert len(opts) <= 12, (name, sorted(opts))


def test_the_default_is_one_loss_file_and_one_op():
    """HingeBoundLoss computes nothing itself but through hinge_counts and
    hinge_bound_from_counts; hinge_counts is one function in one module."""
    from segreg.ops import hinge_counts
    src = inspect.getsource(losses.HingeBoundLoss.class_terms)
    assert 'hinge_counts(' in src and 'hinge_bound_from_counts(' in src
    assert inspect.getmodule(hinge_counts).__name__ == 'segreg.ops.hinge_sums'
    assert issubclass(losses.HingeBoundLoss, PixelMetricLoss)


def test_no_module_level_tensor_caches():
    """No lru_cache / module-level dicts of tensors in segreg/ops."""
    for path in (PKG / 'ops').glob('*.py'):
        text = path.read_text()
        assert 'lru_cache' not in text and 'functools.cache' not in text, \
            path.name
