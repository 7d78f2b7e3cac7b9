# COCO-Stuff 2017 stuff-only (the paper's setting): 92 classes, train id 0 =
# "other" (all thing pixels), 1-91 = the stuff classes (COCO id - 91), 255 =
# ignore, in `annotations/*/*_labelTrainIds.png` written by
# `tools/convert_coco_stuff.py --source json` from stuff_{train,val}2017.json
# (layout in docs/data.md). The training pipeline also computes the paper's
# image-level size label (SizeLabel: "other" is class 0, threshold 0.95;
# 0.05 for the rest) and packs it with the sample index into the data
# samples' metainfo ('size_label', 'sample_idx') for SMeasureLoss. Those types
# and COCOStuffStuffOnlyDataset are segreg's: default_runtime.py imports segreg
# (custom_imports); a dataset base must not set it too, or no config can
# inherit both (mmengine refuses a key defined by two bases).
dataset_type = 'COCOStuffStuffOnlyDataset'
data_root = 'data/coco_stuff_stuffonly'
crop_size = (512, 512)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(
        type='SizeLabel',
        threshold=0.05,
        background_index=0,
        background_threshold=0.95),
    dict(
        type='RandomResize',
        scale=(2048, 512),
        ratio_range=(0.5, 2.0),
        keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputsWithMeta',
         extra_meta_keys=('sample_idx', 'size_label'))
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='Resize', scale=(2048, 512), keep_ratio=True),
    # annotations are loaded after Resize: metrics use the original labels
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')
]
train_dataloader = dict(
    batch_size=4,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='SeededInfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(
            img_path='images/train2017', seg_map_path='annotations/train2017'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=1,
    num_workers=4,
    persistent_workers=True,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        data_prefix=dict(
            img_path='images/val2017', seg_map_path='annotations/val2017'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(type='SegregIoUMetric')
test_evaluator = val_evaluator
