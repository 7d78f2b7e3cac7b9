# Realistic benchmark arm: CE + DualFbetaLoss (F1, beta=1) with the
# defaults of DualIoULoss (direct hinge bound, every 4th pixel); the
# DualFbeta-on-mFscore arm: compare its mFscore with CE's and the
# DualIoU arm's.
_base_ = './deeplabv3plus_r18-tiny_1xb8-2k_collage-80x80.py'
num_classes = 12
model = dict(
    decode_head=dict(loss_decode=[
        dict(
            type='CrossEntropyLoss',
            use_sigmoid=False,
            loss_weight=1.0,
            avg_non_ignore=True),
        dict(type='DualFbetaLoss', num_classes=num_classes, beta=1.0,
             loss_weight=1.0),
    ]))
custom_hooks = [dict(type='DualAscentHook', log_interval=25)]
