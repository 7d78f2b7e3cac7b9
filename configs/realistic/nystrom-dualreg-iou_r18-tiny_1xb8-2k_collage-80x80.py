# Realistic benchmark arm: the Nystrom head with CE + DualIoU (the default
# regularizer), to see whether the head and the regularizer add up.
_base_ = './nystrom_r18-tiny_1xb8-2k_collage-80x80.py'
num_classes = 12
model = dict(
    decode_head=dict(loss_decode=[
        dict(
            type='CrossEntropyLoss',
            use_sigmoid=False,
            loss_weight=1.0,
            avg_non_ignore=True),
        dict(type='DualIoULoss', num_classes=num_classes, loss_weight=1.0),
    ]))
