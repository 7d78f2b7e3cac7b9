"""Checkpoint files: safe loading, atomic writing, finding one to resume.

Checking that a checkpoint belongs to a model before loading it:

mmengine's ``load_checkpoint`` is lenient by default: keys that do not match
are logged as a warning and the model keeps its random weights, so evaluating
the wrong checkpoint silently reports chance-level metrics. The tools call
:func:`check_checkpoint_compatible` first and stop with a message that names
the file and the first mismatching parameters.
"""
from __future__ import annotations

import glob
import os
import os.path as osp
import re
from typing import Dict, List, Optional, Tuple

import torch
from torch import nn


class CheckpointMismatchError(RuntimeError):
    """The checkpoint's weights do not fit the model built from the config."""


def load_weights_only(path: str, mmap: bool = False):
    """``torch.load(path, weights_only=True)`` on the CPU.

    segreg's checkpoints (``SafeCheckpointHook``) need no allow-list; older
    mmengine checkpoints hold ``HistoryBuffer`` and NumPy objects, which are
    allowed here through mmengine's own list of safe globals (still a
    weights-only load: no arbitrary code runs).
    """
    try:
        return torch.load(path, map_location='cpu', weights_only=True,
                          mmap=mmap)
    except Exception as exc:
        if 'Unsupported global' not in str(exc):
            raise
    from mmengine.runner.checkpoint import get_torch_safe_globals
    with torch.serialization.safe_globals(get_torch_safe_globals()):
        return torch.load(path, map_location='cpu', weights_only=True,
                          mmap=mmap)


def fsync_replace(tmp: str, dst: str) -> None:
    """Flush ``tmp`` to disk and rename it to ``dst`` (atomic on POSIX)."""
    with open(tmp, 'rb+') as f:
        os.fsync(f.fileno())
    os.replace(tmp, dst)
    try:  # persist the rename itself
        fd = os.open(osp.dirname(osp.abspath(dst)), os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:  # pragma: no cover - e.g. folders that cannot be opened
        pass


def atomic_write_text(path: str, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file and a rename."""
    tmp = osp.join(osp.dirname(osp.abspath(path)),
                   f'.{osp.basename(path)}.tmp{os.getpid()}')
    with open(tmp, 'w') as f:
        f.write(text)
    fsync_replace(tmp, path)


def readable_checkpoint(path: str) -> Optional[str]:
    """None if ``path`` loads as a training checkpoint, else why not.

    Memory-maps the file, so the check reads the pickled structure and the
    zip directory (what a truncated or empty file lacks), not the tensors.
    """
    if not osp.isfile(path):
        return 'does not exist'
    if osp.getsize(path) == 0:
        return 'is empty (0 bytes)'
    try:
        ckpt = load_weights_only(path, mmap=True)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return f'is unreadable ({first[:120]})'
    if not isinstance(ckpt, dict) or 'state_dict' not in ckpt \
            or 'iter' not in ckpt.get('meta', {}):
        return 'is not a training checkpoint (no state_dict / meta.iter)'
    return None


def _step_of(path: str) -> int:
    match = re.search(r'(\d+)\.pth$', osp.basename(path))
    return int(match.group(1)) if match else -1


def find_resumable_checkpoint(
        work_dir: str) -> Tuple[Optional[str], Optional[str]]:
    """The checkpoint that auto ``--resume`` should load, and a note.

    ``last_checkpoint`` names it when that file and the checkpoint it names
    are readable. Otherwise the newest readable ``iter_*.pth`` /
    ``epoch_*.pth`` of ``work_dir`` (and of the folder ``last_checkpoint``
    points to) is chosen, and the note says why in one line.

    Returns:
        (path or None, note or None): None path: nothing to resume.
    """
    pointer = osp.join(work_dir, 'last_checkpoint')
    folders = [work_dir]
    named = None
    if not osp.isfile(pointer):
        problem = f'{pointer} does not exist'
    else:
        try:
            with open(pointer) as f:
                named = f.read().strip()
        except OSError as exc:
            named = None
            problem = f'{pointer} is unreadable ({exc})'
        else:
            if not named:
                problem = f'{pointer} is empty'
            else:
                why = readable_checkpoint(named)
                if why is None:
                    return named, None
                problem = f'{named} (named by last_checkpoint) {why}'
                folders.append(osp.dirname(named))
    found = {p for d in folders for pat in ('iter_*.pth', 'epoch_*.pth')
             for p in glob.glob(osp.join(d, pat))}
    if not found and not osp.isfile(pointer):
        return None, None  # a fresh work dir: nothing to say
    for cand in sorted(found, key=_step_of, reverse=True):
        if named is not None and osp.abspath(cand) == osp.abspath(named):
            continue
        if readable_checkpoint(cand) is None:
            return cand, (f'auto-resume: {problem}; resuming from the '
                          f'newest readable checkpoint {cand}')
    return None, (f'auto-resume: {problem} and no readable checkpoint is in '
                  f'{work_dir}; training starts from iteration 0')


def _state_dict_of(path: str) -> Dict[str, torch.Tensor]:
    if not osp.isfile(path):
        raise FileNotFoundError(f'checkpoint {path!r} does not exist')
    try:
        ckpt = load_weights_only(path)
    except Exception as exc:  # corrupt or not a torch file
        raise CheckpointMismatchError(
            f'cannot read checkpoint {path!r}: {exc}') from exc
    if isinstance(ckpt, dict) and 'state_dict' in ckpt:
        ckpt = ckpt['state_dict']
    if not isinstance(ckpt, dict):
        raise CheckpointMismatchError(
            f'checkpoint {path!r} holds no state_dict')
    return {k[7:] if k.startswith('module.') else k: v
            for k, v in ckpt.items() if isinstance(v, torch.Tensor)}


def check_checkpoint_compatible(model: nn.Module, path: str,
                                max_listed: int = 5) -> None:
    """Raise unless every model tensor is in the checkpoint with its shape.

    Extra checkpoint keys (e.g. an auxiliary head dropped at test time) are
    allowed; missing keys and shape mismatches are not.

    Args:
        model: The model built from the config (possibly DDP-wrapped).
        path: The checkpoint file.
        max_listed: How many offending keys to name in the message.

    Raises:
        FileNotFoundError: If ``path`` does not exist.
        CheckpointMismatchError: Naming the file and the first mismatches.
    """
    model = getattr(model, 'module', model)
    ckpt = _state_dict_of(path)
    own = model.state_dict()
    missing: List[str] = [k for k in own if k not in ckpt]
    shapes: List[str] = [
        f'{k}: checkpoint {tuple(ckpt[k].shape)} vs model '
        f'{tuple(own[k].shape)}' for k in own
        if k in ckpt and tuple(ckpt[k].shape) != tuple(own[k].shape)
    ]
    if not missing and not shapes:
        return
    lines = [f'checkpoint {path!r} does not match the model of this config:']
    if shapes:
        lines.append(f'  {len(shapes)} tensor(s) have another shape, e.g.')
        lines += [f'    {s}' for s in shapes[:max_listed]]
    if missing:
        lines.append(f'  {len(missing)} of {len(own)} model tensor(s) are '
                     f'missing, e.g.')
        lines += [f'    {k}' for k in missing[:max_listed]]
    lines.append('Was it trained with another config (model, num_classes)? '
                 'Pass the config the checkpoint was trained with.')
    raise CheckpointMismatchError('\n'.join(lines))
