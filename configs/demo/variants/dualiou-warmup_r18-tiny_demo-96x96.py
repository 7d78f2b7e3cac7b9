# Variant of the demo DualIoU arm (the regularizer study, docs/experiments.md)
# (../dualreg-iou_deeplabv3plus_r18-tiny_1xb8-1k_demo-96x96.py):
# the DualIoU weight (default configuration: direct bound, stride 4) ramps linearly from 0 to 1 over the first 300 of the
# 1000 iterations (CE trains alone at first).
_base_ = '../dualreg-iou_deeplabv3plus_r18-tiny_1xb8-1k_demo-96x96.py'
model = dict(
    decode_head=dict(loss_decode=[
        _base_.model.decode_head.loss_decode[0],  # cross-entropy
        dict(
            _base_.model.decode_head.loss_decode[1],
            solver='direct',
            sample_stride=4),
    ]))
custom_hooks = [
    dict(type='DualAscentHook', log_interval=25),
    dict(type='LossWarmupHook', warmup_iters=300),
]
