# COCO-Stuff164k ablation: cross-entropy + the class-wise dual-projected F1
# loss (DualFbetaLoss, beta=1). CE alone: ../deeplabv3plus/ (same name).
_base_ = '../deeplabv3plus/deeplabv3plus_r50-d8_4xb4-80k_coco-stuff164k-512x512.py'
num_classes = 171
model = dict(
    decode_head=dict(loss_decode=[
        dict(
            type='CrossEntropyLoss',
            use_sigmoid=False,
            loss_weight=1.0,
            avg_non_ignore=True),
        dict(
            type='DualFbetaLoss',
            num_classes=num_classes,
            beta=1.0,
            solver='direct',
            sample_stride=4,
            loss_weight=1.0),
    ]))
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys={'log_scale': dict(decay_mult=0.0)}))
custom_hooks = [dict(type='DualAscentHook', log_interval=50)]
