"""Checkpoint files: safe loading, atomic writing, finding one to resume,
pretrained weights present before training starts.

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
from typing import Any, Dict, List, Optional, Tuple

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


# ---------------------------------------------------------------------------
# pretrained backbone weights (model.pretrained, init_cfg=Pretrained)
# ---------------------------------------------------------------------------
class PretrainedWeightsError(RuntimeError):
    """Pretrained weights named by the config cannot be found or fetched."""


def pretrained_sources(model_cfg: Any, prefix: str = 'model') -> List[
        Tuple[str, str]]:
    """``(config key, checkpoint name)`` of every pretrained-weights source.

    The keys mmseg reads: ``pretrained`` (``model.pretrained`` of the
    COCO-Stuff configs, moved to the backbone by ``EncoderDecoder``) and
    ``init_cfg=dict(type='Pretrained', checkpoint=...)`` at any depth.
    """
    found: List[Tuple[str, str]] = []
    if isinstance(model_cfg, dict):
        if model_cfg.get('type') == 'Pretrained' and \
                isinstance(model_cfg.get('checkpoint'), str):
            found.append((f'{prefix}.checkpoint', model_cfg['checkpoint']))
        for key, value in model_cfg.items():
            if key == 'pretrained' and isinstance(value, str):
                found.append((f'{prefix}.pretrained', value))
            elif isinstance(value, (dict, list, tuple)):
                found += pretrained_sources(value, f'{prefix}.{key}')
    elif isinstance(model_cfg, (list, tuple)):
        for i, value in enumerate(model_cfg):
            found += pretrained_sources(value, f'{prefix}.{i}')
    return found


def weights_location(name: str) -> Tuple[Optional[str], str]:
    """``(url, local file)`` of a checkpoint name as mmengine loads it.

    ``open-mmlab://`` / ``openmmlab://``, ``torchvision://``, ``mmcls://``
    and ``http(s)://`` names are resolved with mmengine's own tables to the
    URL and the file in torch's hub cache (``$TORCH_HOME/hub/checkpoints``)
    that mmengine downloads it to; any other name is a local path (url
    None).

    Raises:
        PretrainedWeightsError: A name that mmengine's tables do not know.
    """
    from urllib.parse import urlparse

    from mmengine.runner import checkpoint as mmckpt
    url = None
    if name.startswith(('open-mmlab://', 'openmmlab://')):
        key = name.split('://', 1)[1]
        key = mmckpt.get_deprecated_model_names().get(key, key)
        url = mmckpt.get_external_models().get(key)
        if url is not None and not url.startswith(('http://', 'https://')):
            return None, osp.join(mmckpt._get_mmengine_home(), url)
    elif name.startswith(('torchvision://', 'modelzoo://')):
        url = mmckpt.get_torchvision_models().get(name.split('://', 1)[1])
    elif name.startswith('mmcls://'):
        url = mmckpt.get_mmcls_models().get(name.split('://', 1)[1])
    elif name.startswith(('http://', 'https://')):
        url = name
    else:
        return None, osp.expanduser(name)
    if url is None:
        raise PretrainedWeightsError(
            f'{name!r} is not a checkpoint name mmengine knows')
    cached = osp.join(torch.hub.get_dir(), 'checkpoints',
                      osp.basename(urlparse(url).path))
    return url, cached


def ensure_pretrained_weights(cfg: Any, download: bool = True) -> List[str]:
    """Make sure every pretrained checkpoint of ``cfg.model`` is on disk.

    A remote checkpoint (``open-mmlab://resnet50_v1c``, a URL) that is not
    in torch's hub cache yet is downloaded there now, where mmengine will
    find it when it initialises the model; before any data is loaded, and
    with one line instead of a urllib traceback when it fails (no network,
    a proxy, a firewall).

    Args:
        cfg: The config.
        download: False: do not fetch missing remote files (the processes of
            a node other than its first: mmengine's rank-0-first download
            serves them later).

    Returns:
        The files checked (local paths).

    Raises:
        PretrainedWeightsError: In one line: the file and URL needed, the
            ``--cfg-options`` key that points to a local copy, and the cache
            file that mmengine would read.
    """
    checked = []
    for key, name in pretrained_sources(cfg.get('model')):
        try:
            url, path = weights_location(name)
        except PretrainedWeightsError as exc:
            raise PretrainedWeightsError(f'{key}: {exc}') from None
        if osp.isfile(path):
            checked.append(path)
            continue
        if url is None:
            raise PretrainedWeightsError(
                f'pretrained weights {key} = {name!r}: the file does not '
                f'exist')
        if not download:
            continue
        from mmengine.logging import print_log
        print_log(f'downloading {url} to {path}', logger='current')
        try:
            os.makedirs(osp.dirname(path), exist_ok=True)
            torch.hub.download_url_to_file(url, path, progress=False)
        except Exception as exc:  # urllib, ssl, socket, http errors
            reason = getattr(exc, 'reason', None) or exc
            reason = ' '.join(str(reason).split()) or type(exc).__name__
            file = osp.basename(path)
            raise PretrainedWeightsError(
                f'cannot download the pretrained weights {name} ({url}: '
                f'{reason}); fetch {file} where there is a network and pass '
                f'--cfg-options {key}=/path/to/{file}, or put it at {path}'
            ) from exc
        checked.append(path)
    return checked


def drop_pretrained(cfg: Any) -> List[str]:
    """Remove every pretrained source from ``cfg.model`` (in place).

    A resumed run replaces all weights with the checkpoint's, so it needs
    neither the file nor a network. Returns the keys set to None.
    """
    dropped = []
    for key, _ in pretrained_sources(cfg.get('model')):
        parts = key.split('.')[1:]  # below 'model'
        if parts[-1] == 'checkpoint':  # an init_cfg of type Pretrained
            parts = parts[:-1]
        node = cfg.model
        for part in parts[:-1]:
            node = node[int(part)] if isinstance(node, (list, tuple)) \
                else node[part]
        last = parts[-1]
        if isinstance(node, (list, tuple)):
            node[int(last)] = None
        else:
            node[last] = None
        dropped.append('.'.join(['model'] + parts))
    return dropped
