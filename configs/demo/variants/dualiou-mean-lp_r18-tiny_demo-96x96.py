# Variant of the demo DualIoU arm (the regularizer study, docs/experiments.md)
# (../dualreg-iou_deeplabv3plus_r18-tiny_1xb8-1k_demo-96x96.py):
# the exact per-batch LP with the per-positive normalisation
# sum_{S+} tau = n_c (the LP of f / n_c) instead of the paper's sum tau = 1.
_base_ = '../dualreg-iou_deeplabv3plus_r18-tiny_1xb8-1k_demo-96x96.py'
model = dict(
    decode_head=dict(loss_decode=[
        _base_.model.decode_head.loss_decode[0],  # cross-entropy
        dict(
            _base_.model.decode_head.loss_decode[1],
            solver='exact',
            sample_stride=1,
            normalize='mean'),
    ]))
