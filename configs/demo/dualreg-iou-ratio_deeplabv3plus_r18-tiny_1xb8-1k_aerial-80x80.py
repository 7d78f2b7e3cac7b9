# Aerial (second synthetic set) arm: CE + the dataset-level bound through a
# running ratio (solver='ratio'; docs/regularizer_derivation.md, section 17),
# otherwise the aerial DualIoU arm.
_base_ = './dualreg-iou_deeplabv3plus_r18-tiny_1xb8-1k_aerial-80x80.py'
num_classes = 10
model = dict(
    decode_head=dict(loss_decode=[
        dict(
            type='CrossEntropyLoss',
            use_sigmoid=False,
            loss_weight=1.0,
            avg_non_ignore=True),
        dict(type='DualIoULoss', num_classes=num_classes, solver='ratio',
             loss_weight=1.0),
    ]))
