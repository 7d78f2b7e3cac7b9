"""COCO-Stuff class lists, id mappings and the stuff-only dataset.

One place for the numbers every COCO-Stuff tool needs
(``tools/convert_coco_stuff.py``, ``tools/check_dataset.py``, the configs).

COCO-Stuff category ids (``labels.txt`` of the official cocostuff repository):

* ``0`` unlabeled;
* ``1-91`` things: COCO's 91 thing ids, of which 11 have no segmentation
  annotation (:data:`UNUSED_THING_IDS`), leaving 80 thing classes;
* ``92-182`` the 91 stuff classes;
* ``183`` "other": used only by the stuff-only JSON annotations
  (``stuff_{train,val}2017.json``), it covers every thing pixel.

Three encodings of those ids appear in the official downloads:

* ``stuffthingmaps_trainval2017`` PNGs (COCO-Stuff164k): pixel = id - 1
  (0-181), 255 = unlabeled;
* COCO-Stuff10k ``.mat`` files: ``S`` = id (1-182), 0 = unlabeled;
* COCO JSON (stuff and instances): ``category_id`` = id, RLE or polygons.

segreg writes two kinds of ``*_labelTrainIds.png`` (255 = ignore in both):

* **171 classes** (164k, 10k, or stuff JSON + instances JSON): train id =
  rank of the id among the 171 used ids, i.e. the order of mmseg's
  ``COCOStuffDataset.METAINFO['classes']`` (80 things, then 91 stuff);
* **92 classes, stuff-only** (the paper's setting): train id 0 = "other"
  (all thing pixels), train id ``id - 91`` = stuff class ``id`` (1-91).
  "other" is class 0 on purpose: it is the catch-all "background" of the
  stuff-only task, the class the paper's size rule treats specially
  (threshold 0.95 for class 0, see ``SizeLabel``).
"""
from __future__ import annotations

from typing import Dict, Tuple

import numpy as np
from mmseg.datasets import BaseSegDataset, COCOStuffDataset
from mmseg.registry import DATASETS

IGNORE_INDEX = 255

#: COCO-Stuff category id -> name, for ids 1-182 (labels.txt of cocostuff).
COCO_STUFF_ID_TO_NAME: Dict[int, str] = dict(enumerate((
    'person', 'bicycle', 'car', 'motorcycle', 'airplane', 'bus', 'train',
    'truck', 'boat', 'traffic light', 'fire hydrant', 'street sign',
    'stop sign', 'parking meter', 'bench', 'bird', 'cat', 'dog', 'horse',
    'sheep', 'cow', 'elephant', 'bear', 'zebra', 'giraffe', 'hat',
    'backpack', 'umbrella', 'shoe', 'eye glasses', 'handbag', 'tie',
    'suitcase', 'frisbee', 'skis', 'snowboard', 'sports ball', 'kite',
    'baseball bat', 'baseball glove', 'skateboard', 'surfboard',
    'tennis racket', 'bottle', 'plate', 'wine glass', 'cup', 'fork', 'knife',
    'spoon', 'bowl', 'banana', 'apple', 'sandwich', 'orange', 'broccoli',
    'carrot', 'hot dog', 'pizza', 'donut', 'cake', 'chair', 'couch',
    'potted plant', 'bed', 'mirror', 'dining table', 'window', 'desk',
    'toilet', 'door', 'tv', 'laptop', 'mouse', 'remote', 'keyboard',
    'cell phone', 'microwave', 'oven', 'toaster', 'sink', 'refrigerator',
    'blender', 'book', 'clock', 'vase', 'scissors', 'teddy bear',
    'hair drier', 'toothbrush', 'hair brush',
    # stuff, 92-182
    'banner', 'blanket', 'branch', 'bridge', 'building-other', 'bush',
    'cabinet', 'cage', 'cardboard', 'carpet', 'ceiling-other',
    'ceiling-tile', 'cloth', 'clothes', 'clouds', 'counter', 'cupboard',
    'curtain', 'desk-stuff', 'dirt', 'door-stuff', 'fence', 'floor-marble',
    'floor-other', 'floor-stone', 'floor-tile', 'floor-wood', 'flower',
    'fog', 'food-other', 'fruit', 'furniture-other', 'grass', 'gravel',
    'ground-other', 'hill', 'house', 'leaves', 'light', 'mat', 'metal',
    'mirror-stuff', 'moss', 'mountain', 'mud', 'napkin', 'net', 'paper',
    'pavement', 'pillow', 'plant-other', 'plastic', 'platform',
    'playingfield', 'railing', 'railroad', 'river', 'road', 'rock', 'roof',
    'rug', 'salad', 'sand', 'sea', 'shelf', 'sky-other', 'skyscraper',
    'snow', 'solid-other', 'stairs', 'stone', 'straw', 'structural-other',
    'table', 'tent', 'textile-other', 'towel', 'tree', 'vegetable',
    'wall-brick', 'wall-concrete', 'wall-other', 'wall-panel', 'wall-stone',
    'wall-tile', 'wall-wood', 'water-other', 'waterdrops', 'window-blind',
    'window-other', 'wood'), start=1))

#: COCO thing ids without any segmentation annotation (dropped everywhere).
UNUSED_THING_IDS: Tuple[int, ...] = (12, 26, 29, 30, 45, 66, 68, 69, 71, 83,
                                     91)
THING_IDS: Tuple[int, ...] = tuple(
    i for i in range(1, 92) if i not in UNUSED_THING_IDS)
STUFF_IDS: Tuple[int, ...] = tuple(range(92, 183))
#: The stuff JSON's catch-all class for thing pixels.
OTHER_ID = 183

#: The 171 COCO-Stuff classes in train-id order (= mmseg's COCOStuffDataset).
COCO_STUFF_CLASSES: Tuple[str, ...] = tuple(
    COCO_STUFF_ID_TO_NAME[i] for i in THING_IDS + STUFF_IDS)
#: The 92 stuff-only classes in train-id order: "other", then 91 stuff.
STUFF_ONLY_CLASSES: Tuple[str, ...] = ('other', ) + tuple(
    COCO_STUFF_ID_TO_NAME[i] for i in STUFF_IDS)
#: Train id of "other" in the stuff-only encoding.
STUFF_ONLY_OTHER_TRAIN_ID = 0


def _lut(pairs) -> np.ndarray:
    lut = np.full(256, IGNORE_INDEX, dtype=np.uint8)
    for src, dst in pairs:
        lut[src] = dst
    lut.setflags(write=False)
    return lut


#: COCO-Stuff id (0-255) -> 171-class train id; 0, unused ids, >182 -> 255.
COCO_ID_TO_TRAIN_ID: np.ndarray = _lut(
    (cid, t) for t, cid in enumerate(THING_IDS + STUFF_IDS))
#: stuffthingmaps PNG value (id - 1) -> 171-class train id; 255 stays 255.
STUFFTHINGMAP_TO_TRAIN_ID: np.ndarray = _lut(
    (cid - 1, t) for t, cid in enumerate(THING_IDS + STUFF_IDS))
#: COCO-Stuff id -> 92-class stuff-only train id: stuff 92-182 -> 1-91,
#: other (183) -> 0, everything else (0, thing ids) -> 255.
COCO_ID_TO_STUFF_ONLY_TRAIN_ID: np.ndarray = _lut(
    [(cid, cid - 91) for cid in STUFF_IDS] +
    [(OTHER_ID, STUFF_ONLY_OTHER_TRAIN_ID)])

assert COCO_STUFF_CLASSES == tuple(COCOStuffDataset.METAINFO['classes'])
assert len(STUFF_ONLY_CLASSES) == 92

_OTHER_COLOR = [255, 215, 0]  # cocostuff's colour for "other"


@DATASETS.register_module()
class COCOStuffStuffOnlyDataset(BaseSegDataset):
    """COCO-Stuff 2017 stuff-only segmentation: 91 stuff classes + "other".

    The setting of the COCO 2017 Stuff Segmentation Challenge, which the
    dual-regularizer paper trained on. Labels are ``*_labelTrainIds.png``
    written by ``tools/convert_coco_stuff.py --source json`` from
    ``stuff_{train,val}2017.json``: train id 0 = "other" (every thing pixel),
    1-91 = the stuff classes in COCO id order (train id = COCO id - 91), 255
    = unlabeled (ignored). Layout: ``docs/data.md``.
    """
    METAINFO = dict(
        classes=STUFF_ONLY_CLASSES,
        palette=[_OTHER_COLOR] +
        [list(c) for c in COCOStuffDataset.METAINFO['palette'][80:171]])

    def __init__(self,
                 img_suffix='.jpg',
                 seg_map_suffix='_labelTrainIds.png',
                 reduce_zero_label=False,
                 **kwargs) -> None:
        super().__init__(
            img_suffix=img_suffix,
            seg_map_suffix=seg_map_suffix,
            reduce_zero_label=reduce_zero_label,
            **kwargs)
