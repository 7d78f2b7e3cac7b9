# Variant of the demo DualIoU arm (the regularizer study, docs/experiments.md)
# (../dualreg-iou_deeplabv3plus_r18-tiny_1xb8-1k_demo-96x96.py):
# persistent class-level eps_c / mu_c with dual ascent across batches
# and running class counts instead of the per-batch exact LP solve.
_base_ = '../dualreg-iou_deeplabv3plus_r18-tiny_1xb8-1k_demo-96x96.py'
model = dict(
    decode_head=dict(loss_decode=[
        _base_.model.decode_head.loss_decode[0],  # cross-entropy
        dict(
            _base_.model.decode_head.loss_decode[1],
            solver='dual_ascent',
            sample_stride=1),
    ]))
# the persistent thresholds log_eps are loss parameters: no weight decay
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys={
        'log_scale': dict(decay_mult=0.0),
        'log_eps': dict(decay_mult=0.0)
    }))
