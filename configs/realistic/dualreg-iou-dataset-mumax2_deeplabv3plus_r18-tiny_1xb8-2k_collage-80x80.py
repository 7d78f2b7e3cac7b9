# Realistic benchmark probe (batch-size sweep): the dataset-level form with the dual
# domain capped at mu_max = 2 instead of 10. In the batch-size sweep the
# duals of 5-6 of the 12 classes sat at mu_max = 10 by the end (a 10:1 push
# on the positives: over-prediction); at the LP's saddle point
# mu* = (b^2 N + A_neg) / A_pos (derivation, section 16), about 1-2 once
# most positives clear the threshold, so 2 keeps the dual's range where a
# trained network's mu* lies. Measured in docs/experiments.md.
_base_ = './dualreg-iou-dataset_deeplabv3plus_r18-tiny_1xb8-2k_collage-80x80.py'
model = dict(decode_head=dict(loss_decode=[
    dict(type='CrossEntropyLoss', use_sigmoid=False, loss_weight=1.0,
         avg_non_ignore=True),
    dict(type='DualIoULoss', num_classes=12, solver='dataset',
         loss_weight=1.0, mu_max=2.0)]))
