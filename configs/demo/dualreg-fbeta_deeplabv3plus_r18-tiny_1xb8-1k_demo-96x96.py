# Demo ablation arm: cross-entropy + the class-wise dual-projected F1 loss
# (segreg DualFbetaLoss with beta=1; same defaults as DualIoULoss).
_base_ = './deeplabv3plus_r18-tiny_1xb8-1k_demo-96x96.py'
num_classes = 12
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
custom_hooks = [dict(type='DualAscentHook', log_interval=25)]
