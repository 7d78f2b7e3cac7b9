# The embedded demo dataset (tools/make_demo_data.py): COCO-Stuff164k layout,
# real COCO-Stuff train ids for 12 classes; mmseg's COCOStuffDataset maps them
# to 0..11 through the class list below. 128x128 images, 300 train / 100 val.
dataset_type = 'COCOStuffDataset'
data_root = 'data/demo'
demo_classes = ('sky-other', 'grass', 'sea', 'sand', 'person', 'car', 'bird',
                'kite', 'stop sign', 'traffic light', 'sports ball',
                'frisbee')
metainfo = dict(classes=demo_classes)
crop_size = (96, 96)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(
        type='RandomResize',
        scale=(128, 128),
        ratio_range=(0.75, 1.5),
        keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.9),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs')
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(type='PackSegInputs')
]
train_dataloader = dict(
    batch_size=8,
    num_workers=0,
    sampler=dict(type='SeededInfiniteSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        metainfo=metainfo,
        data_prefix=dict(
            img_path='images/train2017', seg_map_path='annotations/train2017'),
        pipeline=train_pipeline))
val_dataloader = dict(
    batch_size=8,
    num_workers=0,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        metainfo=metainfo,
        data_prefix=dict(
            img_path='images/val2017', seg_map_path='annotations/val2017'),
        pipeline=test_pipeline))
test_dataloader = val_dataloader
# segreg's metric: one class-inclusion rule for every metric (docs/evaluation.md)
val_evaluator = dict(type='SegregIoUMetric')
test_evaluator = val_evaluator
