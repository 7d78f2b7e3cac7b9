# The second synthetic set (tools/make_demo_data.py --kind aerial): top-down
# land cover, thin roads/rivers, tiny rare objects. COCO-Stuff164k layout and
# train ids; 10 classes; 96x96 images, 300 train / 100 val.
_base_ = './demo.py'
data_root = 'data/demo_aerial'
aerial_classes = ('grass', 'dirt', 'tree', 'playingfield', 'road', 'river',
                  'roof', 'car', 'boat', 'tent')
metainfo = dict(classes=aerial_classes)
crop_size = (80, 80)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(
        type='RandomResize',
        scale=(96, 96),
        ratio_range=(0.75, 1.5),
        keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.9),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackSegInputs')
]
train_dataloader = dict(
    dataset=dict(
        data_root=data_root, metainfo=metainfo, pipeline=train_pipeline))
val_dataloader = dict(dataset=dict(data_root=data_root, metainfo=metainfo))
test_dataloader = val_dataloader
