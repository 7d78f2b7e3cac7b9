# Variant (the regularizer study, docs/experiments.md): cross-entropy + DualIoU (the exact per-batch LP on every
# pixel, the configuration before the study) + Lovasz-Softmax, all
# with weight 1 (does the combination keep Lovasz's large classes and
# DualIoU's rare ones?).
_base_ = '../dualreg-iou_deeplabv3plus_r18-tiny_1xb8-1k_demo-96x96.py'
model = dict(
    decode_head=dict(loss_decode=[
        _base_.model.decode_head.loss_decode[0],  # cross-entropy
        dict(
            _base_.model.decode_head.loss_decode[1],
            solver='exact',
            sample_stride=1),
        dict(
            type='LovaszLoss',
            loss_type='multi_class',
            classes='present',
            per_image=False,
            reduction='none',
            loss_weight=1.0),
    ]))
