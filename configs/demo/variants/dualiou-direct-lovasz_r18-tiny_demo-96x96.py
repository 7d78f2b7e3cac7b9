# Variant of the demo DualIoU arm (the regularizer study, docs/experiments.md)
# (../dualreg-iou_deeplabv3plus_r18-tiny_1xb8-1k_demo-96x96.py):
# cross-entropy + the default DualIoU (direct bound, stride 4) +
# Lovasz-Softmax, all with weight 1 (does Lovasz keep the large and thin
# classes the direct bound trades for the rare ones?).
_base_ = '../dualreg-iou_deeplabv3plus_r18-tiny_1xb8-1k_demo-96x96.py'
model = dict(
    decode_head=dict(loss_decode=[
        _base_.model.decode_head.loss_decode[0],  # cross-entropy
        dict(
            _base_.model.decode_head.loss_decode[1],
            solver='direct',
            sample_stride=4),
        dict(
            type='LovaszLoss',
            loss_type='multi_class',
            classes='present',
            per_image=False,
            reduction='none',
            loss_weight=1.0),
    ]))
