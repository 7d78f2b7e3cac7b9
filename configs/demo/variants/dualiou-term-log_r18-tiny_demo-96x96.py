# Variant of the demo DualIoU arm (the regularizer study, docs/experiments.md)
# (../dualreg-iou_deeplabv3plus_r18-tiny_1xb8-1k_demo-96x96.py):
# per-class term -log(bound) = log V (gradient V'/V instead of V'/V^2).
_base_ = '../dualreg-iou_deeplabv3plus_r18-tiny_1xb8-1k_demo-96x96.py'
model = dict(
    decode_head=dict(loss_decode=[
        _base_.model.decode_head.loss_decode[0],  # cross-entropy
        dict(
            _base_.model.decode_head.loss_decode[1],
            solver='exact',
            sample_stride=1,
            term='log'),
    ]))
