# Demo ablation arm: cross-entropy + the paper's image-level S-measure (F1)
# regularizer (Ravi et al., AAAI 2020), reproduced faithfully: a linear score
# head on the (pooled) decoder logits predicts each image's binary "size"
# label (SizeLabel transform); per-image tau / lambda indexed by sample_idx;
# projection + dual ascent once per epoch by DualAscentHook (paper step sizes).
_base_ = './deeplabv3plus_r18-tiny_1xb8-1k_demo-96x96.py'
num_classes = 12
num_train_images = 300  # len(train set): tau and lambda are per image
crop_size = (96, 96)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    # the label is fixed per image: computed before resizing and cropping.
    # Demo class 0 is sky-other, not the stuff-only "other": no background.
    dict(type='SizeLabel', threshold=0.05, background_index=None),
    dict(
        type='RandomResize',
        scale=(128, 128),
        ratio_range=(0.75, 1.5),
        keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.9),
    dict(type='RandomFlip', prob=0.5),
    # packs metainfo['sample_idx'] and metainfo['size_label']
    dict(type='PackSegInputsWithMeta'),
]
train_dataloader = dict(dataset=dict(pipeline=train_pipeline))
model = dict(
    decode_head=dict(loss_decode=[
        dict(
            type='CrossEntropyLoss',
            use_sigmoid=False,
            loss_weight=1.0,
            avg_non_ignore=True),
        dict(
            type='SMeasureLoss',
            num_classes=num_classes,
            num_samples=num_train_images,
            pool_size=(24, 24),  # the decoder's 1/4 resolution of 96x96
            loss_weight=1e-3),  # the paper's alpha
    ]))
# The paper trains tau, eps, w with lr 1e-2 (base lr here 2e-3) and no decay.
optim_wrapper = dict(
    paramwise_cfg=dict(
        custom_keys={'smeasure_lp': dict(lr_mult=5.0, decay_mult=0.0)}))
custom_hooks = [
    dict(
        type='DualAscentHook',
        interval='epoch',
        eta_lambda=1e-3,
        eta_mu=1e-5,
        log_interval=25)
]
