# Aerial (second synthetic set) arm, the anchors of the realistic benchmark: CE + soft Dice with the ignore pixels masked
# (segreg's MaskedDiceLoss; mmseg's DiceLoss counts them), batch-level,
# present classes.
_base_ = './deeplabv3plus_r18-tiny_1xb8-1k_aerial-80x80.py'
model = dict(
    decode_head=dict(loss_decode=[
        dict(
            type='CrossEntropyLoss',
            use_sigmoid=False,
            loss_weight=1.0,
            avg_non_ignore=True),
        dict(type='MaskedDiceLoss', loss_weight=1.0),
    ]))
