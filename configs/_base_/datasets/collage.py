# The realistic in-house benchmark (tools/make_demo_data.py --kind collage):
# real photographs and real object cut-outs shipped with scikit-image
# (sources and licences: segreg/datasets/collage_data.py, docs/data.md).
# COCO-Stuff164k layout and train ids; 12 classes (5 stuff textures, 7 things
# of which 4 hold under 1% of the pixels); 96x96 images, 600 train / 200 val.
_base_ = './demo.py'
data_root = 'data/demo_collage'
collage_classes = ('sky-other', 'wall-brick', 'grass', 'gravel', 'wood',
                   'person', 'cat', 'cup', 'metal', 'paper', 'banner',
                   'horse')
metainfo = dict(classes=collage_classes)
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
