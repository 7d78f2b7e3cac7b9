"""Checking that a checkpoint belongs to a model before loading it.

mmengine's ``load_checkpoint`` is lenient by default: keys that do not match
are logged as a warning and the model keeps its random weights, so evaluating
the wrong checkpoint silently reports chance-level metrics. The tools call
:func:`check_checkpoint_compatible` first and stop with a message that names
the file and the first mismatching parameters.
"""
from __future__ import annotations

import os.path as osp
from typing import Dict, List

import torch
from torch import nn


class CheckpointMismatchError(RuntimeError):
    """The checkpoint's weights do not fit the model built from the config."""


def _state_dict_of(path: str) -> Dict[str, torch.Tensor]:
    if not osp.isfile(path):
        raise FileNotFoundError(f'checkpoint {path!r} does not exist')
    try:
        ckpt = torch.load(path, map_location='cpu', weights_only=False)
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
