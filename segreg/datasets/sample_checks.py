"""Checks of one image / label pair, shared by training, testing and tools.

``tools/check_dataset.py`` checks a whole split before training; the
runner (:class:`segreg.datasets.GuardedDataset`) checks every sample as it
is loaded, so a bad file found in the middle of a run is named in one line
(:class:`BadSampleError`) instead of surfacing as a traceback from inside
mmcv, mmengine or the loss. Both use the functions below.
"""
from __future__ import annotations

import os
import os.path as osp
from typing import Optional, Sequence

import cv2
import numpy as np

#: What every bad-sample message tells the user to run.
CHECK_HINT = 'check the split with `python tools/check_dataset.py {config}`'


class BadSampleError(RuntimeError):
    """A training or test sample whose image or label cannot be used.

    ``str(err)`` is one line: the file, what is wrong and the fix. When a
    DataLoader worker raises it, torch re-raises it in the main process with
    the worker's traceback prepended; :attr:`line` recovers the one line.
    """

    @property
    def line(self) -> str:
        text = str(self).strip()
        last = text.splitlines()[-1] if text else text
        prefix = f'{type(self).__name__}: '
        if prefix in last:
            last = last.split(prefix, 1)[1]
        return last


def hist256(label: np.ndarray) -> np.ndarray:
    """Pixel count of each value of a uint8 map (cv2: ~6x numpy's speed).

    Args:
        label (np.ndarray): A uint8 array of any shape.

    Returns:
        np.ndarray: (256,) int64 counts.
    """
    if label.size < 2**24:  # float32 counts are exact below 2**24
        return cv2.calcHist([np.ascontiguousarray(label)], [0], None, [256],
                            [0, 256]).ravel().astype(np.int64)
    return np.bincount(label.ravel(), minlength=256)


def ends_properly(path: str) -> bool:
    """Cheap truncation check from the file tail (JPEG EOI / PNG IEND).

    Other formats are not checked (True).
    """
    with open(path, 'rb') as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(max(0, size - 64))
        tail = f.read().rstrip(b'\x00\r\n ')
    if path.lower().endswith(('.jpg', '.jpeg')):
        return tail.endswith(b'\xff\xd9')
    if path.lower().endswith('.png'):
        return b'IEND' in tail
    return True


def diagnose_file(path: Optional[str], what: str) -> Optional[str]:
    """Why ``path`` cannot be read as an image, or None if it decodes.

    Args:
        path: The file (None: nothing to check).
        what: ``'image'`` or ``'label'``, for the message.
    """
    if path is None:
        return None
    if not osp.isfile(path):
        return f'{path}: {what} file does not exist'
    if osp.getsize(path) == 0:
        return f'{path}: {what} file is empty (0 bytes)'
    from PIL import Image
    try:
        with Image.open(path) as im:
            im.load()
    except Exception as exc:  # any decoder error: name it, do not crash
        return f'{path}: unreadable, corrupt or truncated {what} ({exc})'
    if not ends_properly(path):
        return f'{path}: truncated {what} (the file ends before its end marker)'
    return None


def bad_label_values(seg: np.ndarray, num_classes: int,
                     ignore_index: int) -> Sequence[int]:
    """Values of ``seg`` outside [0, num_classes) other than ignore_index."""
    if seg.dtype == np.uint8:
        hist = hist256(seg)
        hist[:num_classes] = 0
        if 0 <= ignore_index < 256:
            hist[ignore_index] = 0
        return np.flatnonzero(hist).tolist()
    vals = np.unique(seg)
    bad = (vals < 0) | (vals >= num_classes)
    bad &= vals != ignore_index
    return vals[bad].tolist()


class LoadedSampleCheck:
    """A pipeline step, put right after ``LoadAnnotations``, that checks it.

    Raises :class:`BadSampleError` (one line) when the image was decoded
    from a truncated file, the label is not one channel, the label size
    differs from the image size as loaded (``ori_shape``), or label values
    lie outside ``[0, num_classes)`` other than ``ignore_index`` (after the
    dataset's ``label_map`` / ``reduce_zero_label``). Inserted by
    :class:`segreg.datasets.GuardedDataset`, not meant for configs.

    Args:
        num_classes (int): Classes of the dataset (``len(classes)``).
        ignore_index (int): The ignored label value.
        hint (str): The fix, appended to every message.
    """

    def __init__(self, num_classes: int, ignore_index: int = 255,
                 hint: str = CHECK_HINT.format(config='CONFIG')) -> None:
        self.num_classes = int(num_classes)
        self.ignore_index = int(ignore_index)
        self.hint = hint

    def _fail(self, msg: str) -> None:
        raise BadSampleError(f'bad sample {msg}; {self.hint}')

    def __call__(self, results: dict) -> dict:
        img_path = results.get('img_path')
        if isinstance(img_path, str) and osp.isfile(img_path) \
                and not ends_properly(img_path):
            self._fail(f'{img_path}: truncated image (the file ends before '
                       'its end marker)')
        seg = results.get('gt_seg_map')
        if seg is None:
            return results
        seg_path = results.get('seg_map_path')
        if isinstance(seg_path, str) and osp.isfile(seg_path) \
                and not ends_properly(seg_path):
            self._fail(f'{seg_path}: truncated label (the file ends before '
                       'its end marker)')
        if seg.ndim != 2:
            self._fail(f'{seg_path}: label has shape {seg.shape}; expected '
                       'one channel of class ids (not an RGB colour mask)')
        ori = results.get('ori_shape')
        if ori is not None and tuple(seg.shape) != tuple(ori[:2]):
            self._fail(f'{seg_path}: label is {seg.shape[0]}x{seg.shape[1]} '
                       f'but its image {img_path} is {ori[0]}x{ori[1]} (HxW)')
        bad = bad_label_values(seg, self.num_classes, self.ignore_index)
        if bad:
            self._fail(f'{seg_path}: label values {bad[:10]} outside '
                       f'0-{self.num_classes - 1} (ignore index '
                       f'{self.ignore_index})')
        return results

    def __repr__(self) -> str:
        return (f'{type(self).__name__}(num_classes={self.num_classes}, '
                f'ignore_index={self.ignore_index})')
