# Rate-constraint study: CE + RecallAtPrecisionLoss,
# the paper's recall at precision 0.8 of
# one target class as a Lagrangian with a learned threshold and a dual
# raised by DualAscentHook (segreg/models/losses/rate_losses.py).
_base_ = './ce_r18-tiny_demo-96x96.py'
model = dict(
    decode_head=dict(loss_decode=[
        dict(
            type='CrossEntropyLoss',
            use_sigmoid=False,
            loss_weight=1.0,
            avg_non_ignore=True),
        dict(
            type='RecallAtPrecisionLoss',
            num_classes={{_base_.num_classes}},
            target_classes=[{{_base_.target_class}}],
            precision=0.8,
            loss_weight=1.0),
    ]))
# the thresholds are loss parameters: no weight decay on them
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys={'threshold': dict(decay_mult=0.0)}))
# takes the dual step after every iteration and logs the duals
custom_hooks = [dict(type='DualAscentHook', log_interval=25)]
