"""The MMSegmentation stack segreg runs on: presence check and quiet import.

segreg does not make pip install mmengine / mmcv / mmsegmentation, because
two families of distributions write the same modules and a cluster
environment usually holds one of them already:

* the maintained OpenMMLab fork (tested, ``constraints.txt``):
  ``onedl-mmengine``, ``onedl-mmcv``, ``onedl-mmsegmentation``
  (``pip install -e '.[onedl]'``);
* upstream ``mmengine`` 0.10.x, a compiled ``mmcv`` 2.x (not ``mmcv-lite``)
  and ``mmsegmentation`` 1.2.x, with a torch that those builds support.

:func:`check_stack` turns a missing or broken stack into one ImportError
that says which distributions work and how to install them; an mmcv
without compiled ops for the installed torch (upstream mmcv-lite, or a
build for another torch: ``No module named 'mmcv._ext'`` when mmseg's
datasets or models are imported) gets a two-line :data:`MMCV_OPS_HELP`.

Importing the fork prints ``Could not import OneDL`` (twice, with
``print``) and mmcv warns that ``MultiScaleDeformableAttention`` is missing
in builds without compiled ops; neither concerns segreg.
:func:`quiet_stack_import` drops exactly those two messages while the stack
is first imported; every other line and warning passes through unchanged.
"""
from __future__ import annotations

import contextlib
import io
import re
import sys
import warnings
from typing import Iterator

#: The fork's print when its optional OneDL dataset support is absent.
FORK_NOTICE = 'Could not import OneDL'
#: mmcv's warning (``mmcv.cnn.bricks.transformer``) without compiled ops.
MMCV_WARNING = r'Fail to import ``MultiScaleDeformableAttention``'

STACK_HELP = (
    "segreg needs the MMSegmentation stack (modules mmengine, mmcv, mmseg), "
    "which it does not install itself. Either distribution family works:\n"
    "  - the maintained OpenMMLab fork (tested): onedl-mmengine, onedl-mmcv, "
    "onedl-mmsegmentation -- `pip install -c constraints.txt -e '.[onedl]'` "
    "in a segreg checkout, or `bash tools/setup_env.sh`;\n"
    "  - upstream: mmengine>=0.10,<0.11, a compiled mmcv>=2.0.0rc4,<2.2.0 "
    "(not mmcv-lite: mmseg.models needs mmcv._ext) and "
    "mmsegmentation>=1.2,<1.3, with a torch those builds support "
    "(see README, 'Installation details').\n"
    "Do not install both families: they write the same modules.")


#: Upstream mmseg imports mmcv's compiled ops; two lines, formatted with
#: ``module``, ``error`` (the import error's first line) and ``torch``.
MMCV_OPS_HELP = (
    "{module} needs mmcv's compiled ops, which this mmcv lacks ({error}).\n"
    "Upstream mmsegmentation needs a compiled mmcv>=2.0,<2.2 (not mmcv-lite) "
    "built for the installed torch {torch}; or install segreg's [onedl] "
    "extra instead: pip install -c constraints.txt -e '.[onedl]'")

#: The modules segreg imports, in import order.
STACK_MODULES = ('mmengine', 'mmcv', 'mmseg', 'mmseg.datasets',
                 'mmseg.models')


def _missing_mmcv_ops(exc: BaseException) -> bool:
    text = str(exc)
    return getattr(exc, 'name', None) == 'mmcv._ext' or \
        'mmcv._ext' in text or re.search(r'mmcv/_ext[\w.-]*\.so', text) \
        is not None


def check_stack() -> None:
    """Import the stack (:data:`STACK_MODULES`) or raise one ImportError.

    Raises:
        ImportError: A module is missing or fails to import (the message
            names it, the original error is chained): mmcv without
            compiled ops in two lines (:data:`MMCV_OPS_HELP`), anything
            else with :data:`STACK_HELP`.
    """
    for module in STACK_MODULES:
        try:
            __import__(module)
        except Exception as exc:  # an assertion on versions, a missing .so
            if _missing_mmcv_ops(exc):
                import torch
                error = (str(exc).strip().splitlines() or [''])[0]
                raise ImportError(MMCV_OPS_HELP.format(
                    module=module, error=error,
                    torch=torch.__version__)) from exc
            raise ImportError(f'{module} could not be imported '
                              f'({type(exc).__name__}: {exc}).\n'
                              f'{STACK_HELP}') from exc


@contextlib.contextmanager
def quiet_stack_import() -> Iterator[None]:
    """Drop the stack's two import-time notices; pass everything else.

    Standard output is captured while the block runs and written back
    without the lines equal to :data:`FORK_NOTICE`; mmcv's warning is
    filtered by message, category and module, so the same text raised from
    anywhere else is still shown, as is every other warning.
    """
    warnings.filterwarnings('ignore', message=MMCV_WARNING,
                            category=UserWarning,
                            module=r'mmcv\.cnn\.bricks\.transformer')
    buf = io.StringIO()
    try:
        with contextlib.redirect_stdout(buf):
            yield
    finally:
        kept = [line for line in buf.getvalue().splitlines(keepends=True)
                if line.strip() != FORK_NOTICE]
        if kept:
            sys.stdout.write(''.join(kept))
            sys.stdout.flush()
