# Variant of the demo DualIoU arm (the regularizer study, docs/experiments.md)
# (../dualreg-iou_deeplabv3plus_r18-tiny_1xb8-1k_demo-96x96.py):
# the exact per-batch LP on every 4th pixel in each dim (random phase, weight 16):
# 1/16 of the pixels; DeepLabV3+ predicts at 1/4 resolution anyway.
_base_ = '../dualreg-iou_deeplabv3plus_r18-tiny_1xb8-1k_demo-96x96.py'
model = dict(
    decode_head=dict(loss_decode=[
        _base_.model.decode_head.loss_decode[0],  # cross-entropy
        dict(
            _base_.model.decode_head.loss_decode[1],
            solver='exact',
            sample_stride=4),
    ]))
