# Realistic benchmark arm: CE + segreg's DualIoULoss with its defaults.
_base_ = './deeplabv3plus_r18-tiny_1xb8-2k_collage-80x80.py'
num_classes = 12
model = dict(
    decode_head=dict(loss_decode=[
        dict(
            type='CrossEntropyLoss',
            use_sigmoid=False,
            loss_weight=1.0,
            avg_non_ignore=True),
        dict(type='DualIoULoss', num_classes=num_classes, loss_weight=1.0),
    ]))
# solver='exact' / 'dual_ascent' (set from the command line) learn per-class
# log-scales: no weight decay on them.
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys={'log_scale': dict(decay_mult=0.0)}))
custom_hooks = [dict(type='DualAscentHook', log_interval=25)]
