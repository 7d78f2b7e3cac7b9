"""Config checks shared by the command-line tools.

mmengine merges ``--cfg-options`` silently, so a typo such as
``model.decode_head.num_clases=12`` creates a new, unused key and the run goes
on with the old value. The tools call :func:`merge_cfg_options` instead, which
refuses keys that do not exist and suggests the closest existing one. They
also call :func:`check_data_roots` before building a runner, so a missing
dataset is reported with its path and the place where the layout is described
instead of as an empty-dataset error deep inside mmengine.
"""
from __future__ import annotations

import difflib
import os.path as osp
from typing import Any, Dict, Iterable, List, Optional

from mmengine.config import Config

#: Where the on-disk layouts of every dataset are documented.
DATA_README = 'data/README.md'


class ConfigError(ValueError):
    """A config or a command-line override that cannot be used as given."""


class DataRootError(FileNotFoundError):
    """A dataset folder named by a config does not exist or is empty."""


def _child(node: Any, key: str) -> Any:
    """Return ``node[key]`` for dicts and integer-indexed lists, or raise."""
    if isinstance(node, dict):
        if key in node:
            return node[key]
        raise KeyError(key)
    if isinstance(node, (list, tuple)):
        try:
            return node[int(key)]
        except (ValueError, IndexError):
            raise KeyError(key) from None
    raise KeyError(key)


def find_unknown_keys(cfg: Config, options: Dict[str, Any]) -> List[str]:
    """Describe every dotted key of ``options`` that does not exist in ``cfg``.

    Args:
        cfg: The loaded config.
        options: ``{'a.b.c': value}`` as parsed by mmengine's ``DictAction``.

    Returns:
        One human-readable message per unknown key (empty if all exist).
    """
    messages = []
    for full_key in options:
        node: Any = cfg._cfg_dict
        parts = full_key.split('.')
        for depth, part in enumerate(parts):
            try:
                node = _child(node, part)
            except KeyError:
                where = '.'.join(parts[:depth]) or '<top level>'
                msg = f'{full_key!r}: {where} has no key {part!r}'
                if isinstance(node, dict):
                    close = difflib.get_close_matches(
                        part, [str(k) for k in node.keys()], n=3)
                    if close:
                        msg += f' (did you mean {", ".join(close)}?)'
                elif isinstance(node, (list, tuple)):
                    msg += f' (it is a list of {len(node)} items)'
                messages.append(msg)
                break
    return messages


def merge_cfg_options(cfg: Config,
                      options: Optional[Dict[str, Any]],
                      allow_new_keys: bool = False) -> None:
    """Merge ``--cfg-options`` into ``cfg``, refusing keys that do not exist.

    Args:
        cfg: The config to update in place.
        options: Parsed ``--cfg-options`` (or None).
        allow_new_keys: Accept keys that the config does not have yet.

    Raises:
        ConfigError: Naming each unknown key and the closest existing ones.
    """
    if not options:
        return
    if not allow_new_keys:
        unknown = find_unknown_keys(cfg, options)
        if unknown:
            raise ConfigError(
                'unknown --cfg-options key(s):\n  ' + '\n  '.join(unknown) +
                '\nCheck the spelling against the config (print it with '
                '`python -c "from mmengine import Config; '
                'print(Config.fromfile(CONFIG).pretty_text)"`), or pass '
                '--allow-new-keys to add keys on purpose.')
    cfg.merge_from_dict(options)


def _dataset_cfgs(cfg: Config,
                  loaders: Iterable[str]) -> Iterable[tuple]:
    for name in loaders:
        loader = cfg.get(name)
        if not loader:
            continue
        stack = [loader.get('dataset')]
        while stack:  # unwrap RepeatDataset / ConcatDataset
            ds = stack.pop()
            if ds is None:
                continue
            if isinstance(ds, (list, tuple)):
                stack.extend(ds)
            elif 'datasets' in ds:
                stack.extend(ds['datasets'])
            elif 'dataset' in ds:
                stack.append(ds['dataset'])
            else:
                yield name, ds


def check_data_roots(cfg: Config,
                     loaders: Iterable[str] = ('train_dataloader',
                                               'val_dataloader',
                                               'test_dataloader')) -> None:
    """Fail early, with paths, when a dataset folder named by ``cfg`` is absent.

    Args:
        cfg: The loaded config.
        loaders: Which dataloader sections to check.

    Raises:
        DataRootError: Listing each missing folder, the config key that names
            it, and where the layout is documented.
    """
    problems = []
    for loader, ds in _dataset_cfgs(cfg, loaders):
        root = ds.get('data_root', '') or ''
        prefixes = ds.get('data_prefix', {}) or {}
        if root and not osp.isdir(root):
            problems.append(f'{loader}.dataset.data_root = {root!r} '
                            f'does not exist (cwd: {osp.abspath(".")})')
            continue
        for key, sub in prefixes.items():
            path = osp.join(root, sub) if sub else root
            if path and not osp.isdir(path):
                problems.append(f'{loader}.dataset.data_prefix.{key}: '
                                f'{path!r} does not exist')
    if problems:
        hint = (f'The on-disk layout of every dataset is described in '
                f'{DATA_README}. The demo data are made by '
                f'`python tools/make_demo_data.py`; COCO-Stuff by '
                f'`python tools/convert_coco_stuff.py`. Set another root with '
                f'--cfg-options train_dataloader.dataset.data_root=PATH '
                f'(and val_/test_dataloader).')
        raise DataRootError('dataset not found:\n  ' + '\n  '.join(problems)
                            + '\n' + hint)
