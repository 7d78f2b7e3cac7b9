# Realistic benchmark arm: CE + the dataset-level bound through a running
# ratio (solver='ratio': running means of the batch hinge counts, each batch
# the direction of the training set's IoU bound; no duals, no constraint;
# docs/regularizer_derivation.md, section 17).
_base_ = './dualreg-iou_deeplabv3plus_r18-tiny_1xb8-2k_collage-80x80.py'
num_classes = 12
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
