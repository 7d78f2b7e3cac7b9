# Realistic benchmark arm: CE + the dataset-level form of DualIoU
# (solver='dataset': the paper's Lagrangian over the training set, class
# shares counted over the batches seen, duals mu_c stepped by DualAscentHook;
# docs/regularizer_derivation.md, section 16). Measured in the batch-size
# sweep (docs/experiments.md): weaker than the default at every batch.
_base_ = './dualreg-iou_deeplabv3plus_r18-tiny_1xb8-2k_collage-80x80.py'
num_classes = 12
model = dict(
    decode_head=dict(loss_decode=[
        dict(
            type='CrossEntropyLoss',
            use_sigmoid=False,
            loss_weight=1.0,
            avg_non_ignore=True),
        dict(type='DualIoULoss', num_classes=num_classes, solver='dataset',
             loss_weight=1.0),
    ]))
# the thresholds log_eps are trained by the optimizer: no weight decay
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys={'log_eps': dict(decay_mult=0.0)}))
