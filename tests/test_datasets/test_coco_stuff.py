"""segreg.datasets.coco_stuff: class lists, id tables, the stuff-only set."""
from __future__ import annotations

import os
import os.path as osp

import cv2
import numpy as np

import segreg  # noqa: F401
from mmengine.registry import init_default_scope
from mmseg.datasets import COCOStuffDataset
from mmseg.registry import DATASETS
from segreg.datasets import coco_stuff as cs


def test_class_lists():
    assert len(cs.COCO_STUFF_CLASSES) == 171
    assert cs.COCO_STUFF_CLASSES == tuple(COCOStuffDataset.METAINFO['classes'])
    assert len(cs.STUFF_ONLY_CLASSES) == 92
    assert cs.STUFF_ONLY_CLASSES[0] == 'other'
    assert cs.STUFF_ONLY_CLASSES[1:] == cs.COCO_STUFF_CLASSES[80:]
    assert len(cs.THING_IDS) == 80 and len(cs.STUFF_IDS) == 91
    assert cs.COCO_STUFF_ID_TO_NAME[157] == 'sky-other'


def test_id_tables():
    lut = cs.COCO_ID_TO_STUFF_ONLY_TRAIN_ID
    assert lut[92] == 1 and lut[182] == 91 and lut[183] == 0
    assert (lut[:92] == 255).all() and (lut[184:] == 255).all()
    # stuff-only train id t names the same class as the 171-class id t + 79
    for cid in cs.STUFF_IDS:
        assert cs.STUFF_ONLY_CLASSES[lut[cid]] == \
            cs.COCO_STUFF_CLASSES[cs.COCO_ID_TO_TRAIN_ID[cid]]
    full = cs.COCO_ID_TO_TRAIN_ID
    assert full[0] == 255 and full[1] == 0 and full[182] == 170
    assert all(full[i] == 255 for i in cs.UNUSED_THING_IDS)
    assert (cs.STUFFTHINGMAP_TO_TRAIN_ID[:182] == full[1:183]).all()
    assert cs.STUFFTHINGMAP_TO_TRAIN_ID[255] == 255
    assert not lut.flags.writeable


def test_stuffonly_dataset_loads_train_ids_unchanged(tmp_path):
    init_default_scope('mmseg')
    seg = np.array([[0, 1, 91, 255], [45, 45, 0, 0]], np.uint8)
    for sub, name, arr in (('images', 'a.jpg', np.zeros((2, 4, 3), np.uint8)),
                           ('annotations', 'a_labelTrainIds.png', seg)):
        os.makedirs(tmp_path / sub / 'val2017')
        cv2.imwrite(str(tmp_path / sub / 'val2017' / name), arr)
    ds = DATASETS.build(dict(
        type='COCOStuffStuffOnlyDataset', data_root=str(tmp_path),
        data_prefix=dict(img_path='images/val2017',
                         seg_map_path='annotations/val2017'),
        pipeline=[dict(type='LoadAnnotations')]))
    assert len(ds) == 1 and len(ds.metainfo['classes']) == 92
    assert len(ds.metainfo['palette']) == 92
    np.testing.assert_array_equal(ds[0]['gt_seg_map'], seg)
    assert osp.basename(ds[0]['seg_map_path']) == 'a_labelTrainIds.png'
