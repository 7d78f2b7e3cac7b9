# Issue-7 variant of the demo DualIoU arm
# (../dualreg-iou_deeplabv3plus_r18-tiny_1xb8-1k_demo-96x96.py):
# the loss on every 2nd pixel in each dim (random phase, weight 4):
# 1/4 of the pixels.
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
            sample_stride=2, loss_weight=1.0),
    ]))
