# Demo ablation arm: cross-entropy + the class-wise dual-projected IoU loss
# (segreg DualIoULoss, defaults: log-odds scores, learnable per-class scales,
# direct hinge bound for classes whose LP is infeasible, term 1 - bound).
_base_ = './deeplabv3plus_r18-tiny_1xb8-1k_demo-96x96.py'
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
# The learnable per-class log-scales are loss parameters: no weight decay.
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys={'log_scale': dict(decay_mult=0.0)}))
# Logs the per-class scales / thresholds / feasibility to TensorBoard.
custom_hooks = [dict(type='DualAscentHook', log_interval=25)]
