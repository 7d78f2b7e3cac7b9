# COCO-Stuff164k ablation: cross-entropy + the paper's image-level S-measure
# (F1 of the per-image "size" label) regularizer, alpha = 1e-3, projection and
# dual ascent once per epoch (DualAscentHook, eta_lambda 1e-3, eta_mu 1e-5).
# Deviation from the paper: the score head sees the logits average-pooled to
# 32x32 (a linear layer on 171 x 128 x 128 full decoder logits would have
# 2.8M inputs; the paper's had 92 x 27 x 40 = 99360).
_base_ = '../deeplabv3plus/deeplabv3plus_r50-d8_4xb4-80k_coco-stuff164k-512x512.py'
num_classes = 171
num_train_images = 118287  # COCO-Stuff164k train2017
crop_size = (512, 512)
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='LoadAnnotations'),
    # the paper's size rule; class 0 is "person" in the 171-class labels, so
    # no class gets the 0.95 background threshold.
    dict(type='SizeLabel', threshold=0.05, background_index=None),
    dict(
        type='RandomResize',
        scale=(2048, 512),
        ratio_range=(0.5, 2.0),
        keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PhotoMetricDistortion'),
    dict(type='PackSegInputsWithMeta'),  # + sample_idx, size_label
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
            pool_size=(32, 32),
            loss_weight=1e-3),
    ]))
# tau, eps, w: lr 1e-2 (base SGD lr 1e-2), no weight decay.
optim_wrapper = dict(
    paramwise_cfg=dict(
        custom_keys={'smeasure_lp': dict(lr_mult=1.0, decay_mult=0.0)}))
custom_hooks = [
    dict(
        type='DualAscentHook',
        interval='epoch',
        eta_lambda=1e-3,
        eta_mu=1e-5,
        log_interval=50)
]
