# DeepLabV3+ R-50-D8 on COCO-Stuff164k with albumentations augmentations.
# AlbuSeg (segreg) runs an albumentations 2.x pipeline on the image and the
# label map together: geometric transforms move the labels with nearest
# interpolation, the borders they create are filled with 255 (ignore) in the
# label, not class 0, and the randomness follows mmengine's seed.
# It replaces PhotoMetricDistortion of the base pipeline.
_base_ = './deeplabv3plus_r50-d8_4xb4-80k_coco-stuff164k-512x512.py'
crop_size = (512, 512)
albu_transforms = [
    dict(
        type='Affine',
        rotate=(-10, 10),
        scale=(0.9, 1.1),
        translate_percent=(-0.05, 0.05),
        p=0.5),
    dict(
        type='RandomBrightnessContrast',
        brightness_limit=0.2,
        contrast_limit=0.2,
        p=0.5),
    dict(
        type='HueSaturationValue',
        hue_shift_limit=10,
        sat_shift_limit=20,
        val_shift_limit=10,
        p=0.3),
    dict(
        type='OneOf',
        transforms=[
            dict(type='GaussianBlur', blur_limit=(3, 5)),
            dict(type='MotionBlur', blur_limit=(3, 5)),
            dict(type='GaussNoise', std_range=(0.02, 0.06)),
        ],
        p=0.2),
]
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    dict(
        type='RandomResize',
        scale=(2048, 512),
        ratio_range=(0.5, 2.0),
        keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='AlbuSeg', transforms=albu_transforms, ignore_index=255),
    dict(type='PackSegInputs')
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
