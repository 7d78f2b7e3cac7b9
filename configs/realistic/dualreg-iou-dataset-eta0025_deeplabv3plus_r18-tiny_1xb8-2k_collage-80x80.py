# Realistic benchmark probe (batch-size sweep): the dataset-level form with its dual
# step per image held at batch 8's (eta_mu = 0.01 * 2 / 8, for --batch 2).
# Measured in the batch-size sweep (docs/experiments.md): no better.
_base_ = './dualreg-iou-dataset_deeplabv3plus_r18-tiny_1xb8-2k_collage-80x80.py'
model = dict(decode_head=dict(loss_decode=[
    dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0,
         avg_non_ignore=True),
    dict(type='DualIoULoss', num_classes=12, solver='dataset',
         loss_weight=1.0, eta_mu=0.0025)]))
