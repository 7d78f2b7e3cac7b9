# Issue-7 variant: cross-entropy + DualIoU (the exact per-batch LP on every
# pixel, the configuration before the study) + Lovasz-Softmax, all
# with weight 1 (does the combination keep Lovasz's large classes and
# DualIoU's rare ones?).
_base_ = '../dualreg-iou_deeplabv3plus_r18-tiny_1xb8-1k_demo-96x96.py'
model = dict(
    decode_head=dict(loss_decode=[
        dict(
            type='CrossEntropyLoss',
            use_sigmoid=False,
            loss_weight=1.0,
            avg_non_ignore=True),
        dict(
            type='DualIoULoss',
            num_classes=12,
            solver='exact',
            sample_stride=1,
            loss_weight=1.0),
        dict(
            type='LovaszLoss',
            loss_type='multi_class',
            classes='present',
            per_image=False,
            reduction='none',
            loss_weight=1.0),
    ]))
