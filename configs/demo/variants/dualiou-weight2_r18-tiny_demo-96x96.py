# Issue-7 variant of the demo DualIoU arm
# (../dualreg-iou_deeplabv3plus_r18-tiny_1xb8-1k_demo-96x96.py):
# the default configuration (direct bound, stride 4) with loss_weight=2
# instead of 1 (the weight sweep).
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
            solver='direct',
            sample_stride=4,
            loss_weight=2),
    ]))
