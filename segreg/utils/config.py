"""Config checks shared by the command-line tools.

mmengine merges ``--cfg-options`` silently, so a typo such as
``model.decode_head.num_clases=12`` creates a new, unused key and the run goes
on with the old value. The tools call :func:`merge_cfg_options` instead, which
refuses keys that do not exist and suggests the closest existing one. They
also call :func:`check_data_roots` before building a runner, so a missing
dataset is reported with its path and the place where the layout is described
instead of as an empty-dataset error deep inside mmengine, and
:func:`check_model_cfg`, so an unknown type, a wrong loss option or a
``num_classes`` that disagrees between a loss and its head is one line
before any data is read.
"""
from __future__ import annotations

import difflib
import os.path as osp
import re
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


# ---------------------------------------------------------------------------
# the model section, checked before any data is loaded
# ---------------------------------------------------------------------------
_REGISTRY_MISS = re.compile(
    r"'?([\w.]+) is not in the (?:([\w.-]+)::)?([\w _]+?) registry")


def _registries() -> Dict[str, Any]:
    """mmseg's registries by name (``'model'``, ``'hook'``, ...)."""
    import mmseg.registry
    from mmengine.registry import Registry
    return {reg.name: reg for reg in vars(mmseg.registry).values()
            if isinstance(reg, Registry)}


def registered_names(registry) -> List[str]:
    """Every type name ``registry`` resolves without a scope prefix: its
    own and its parents' (mmseg's models and mmengine's, say)."""
    registry.import_from_location()
    names = set()
    while registry is not None:
        names |= set(registry.module_dict)
        registry = registry.parent
    return sorted(names)


def closest_names(name: str, names: Iterable[str], n: int = 3) -> List[str]:
    """The registered names closest to ``name`` (difflib, any case)."""
    by_lower: Dict[str, str] = {}
    for cand in names:
        by_lower.setdefault(cand.lower(), cand)
    return [by_lower[c] for c in difflib.get_close_matches(
        name.lower(), list(by_lower), n=n, cutoff=0.6)]


def find_type_keys(node: Any, type_name: str, prefix: str = '') -> List[str]:
    """Dotted config keys of every ``type`` equal to ``type_name``."""
    found = []
    if isinstance(node, dict):
        if node.get('type') == type_name:
            found.append(f'{prefix}.type' if prefix else 'type')
        for key, value in node.items():
            found += find_type_keys(value, type_name,
                                    f'{prefix}.{key}' if prefix else str(key))
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            found += find_type_keys(value, type_name,
                                    f'{prefix}.{i}' if prefix else str(i))
    return found


def explain_registry_error(exc: BaseException, cfg: Any,
                           prefix: str = '') -> Optional[str]:
    """One line for mmengine's "X is not in the ... registry" KeyError.

    Names the config key that holds the unknown type and the closest
    registered names, e.g. ``model.decode_head.loss_decode.1.type =
    'DualIOULoss' is not a registered model type (did you mean
    DualIoULoss?)``. None when ``exc`` is not such an error.

    Args:
        exc: The exception raised while building from ``cfg``.
        cfg: The config (section) that was being built.
        prefix: The dotted key of ``cfg`` in the whole config.
    """
    if not isinstance(exc, KeyError):
        return None
    match = _REGISTRY_MISS.search(str(exc))
    if not match:
        return None
    name, kind = match.group(1), match.group(3)
    keys = find_type_keys(getattr(cfg, '_cfg_dict', cfg), name, prefix)
    where = (keys[0] if keys else 'type') + f' = {name!r}'
    registry = _registries().get(kind)
    close = closest_names(name, registered_names(registry)) \
        if registry is not None else []
    hint = (f' (did you mean {", ".join(close)}?)' if close else
            ' (is the module that registers it in custom_imports?)')
    return f'{where} is not a registered {kind} type{hint}'


_MMENGINE_PREFIX = re.compile(r'class `[^`]+` in [^:]+?\.py: ')


def _first_line(exc: BaseException) -> str:
    # str(KeyError) is the repr of its message: take the message itself
    text = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args \
        else str(exc)
    text = _MMENGINE_PREFIX.sub('', text.strip())
    return (text.splitlines() or [type(exc).__name__])[0]


def _heads(model: dict) -> Iterable[tuple]:
    for key in ('decode_head', 'auxiliary_head'):
        head = model.get(key)
        if isinstance(head, dict):
            yield f'model.{key}', head
        elif isinstance(head, (list, tuple)):
            for i, sub in enumerate(head):
                if isinstance(sub, dict):
                    yield f'model.{key}.{i}', sub


def _losses(head: dict, head_key: str) -> Iterable[tuple]:
    losses = head.get('loss_decode')
    if isinstance(losses, dict):
        yield f'{head_key}.loss_decode', losses
    elif isinstance(losses, (list, tuple)):
        for i, loss in enumerate(losses):
            yield f'{head_key}.loss_decode.{i}', loss


def check_model_cfg(cfg: Config) -> None:
    """Build the model of ``cfg`` once on the CPU and check its losses.

    Run by the tools before any data is loaded, so that a mistake in the
    model section costs seconds, not a dataset scan: every loss of every
    head is built on its own (its key is named with the error), then the
    whole model. Checked:

    * every ``type`` is registered (else the key, and the closest
      registered names);
    * each loss accepts its options (``sample_stride=0``, an option of
      another solver, ...: the loss's own message, with its key);
    * a loss that takes ``num_classes`` agrees with its head's (the number
      of logit channels);
    * whatever else makes the model fail to build.

    Raises:
        ConfigError: In one or two lines, naming the config key.
    """
    import copy
    import warnings

    from mmengine.registry import DefaultScope
    from mmseg.registry import MODELS

    model = cfg.get('model')
    if not isinstance(model, dict):
        return

    def build(section, key):
        try:
            return MODELS.build(copy.deepcopy(section))
        except Exception as exc:  # noqa: BLE001 - reported in one line
            why = explain_registry_error(exc, section, key)
            if why is None:
                kind = section.get('type', '?') \
                    if isinstance(section, dict) else '?'
                why = f'{key} ({kind}): {_first_line(exc)}'
            raise ConfigError(why) from exc

    with warnings.catch_warnings(), \
            DefaultScope.overwrite_default_scope(
                cfg.get('default_scope', 'mmseg')):
        # the models' construction warnings are shown when the runner
        # builds the model, once
        warnings.simplefilter('ignore')
        for head_key, head in _heads(model):
            channels = head.get('out_channels') or head.get('num_classes')
            for key, loss_cfg in _losses(head, head_key):
                loss = build(loss_cfg, key)
                n = getattr(loss, 'num_classes', None)
                if n is not None and channels is not None and n != channels:
                    raise ConfigError(
                        f'{key}.num_classes = {n} ({loss_cfg.get("type")}) '
                        f'but {head_key} has num_classes = {channels}: set '
                        'both to the number of classes of the dataset')
        build(model, 'model')
