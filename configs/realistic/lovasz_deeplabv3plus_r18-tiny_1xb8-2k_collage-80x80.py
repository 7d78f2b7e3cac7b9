# Realistic benchmark arm: CE + mmseg's Lovasz-Softmax (Berman et al. 2018),
# over the whole batch (per_image=False needs reduction='none' in mmseg),
# present classes only.
_base_ = './deeplabv3plus_r18-tiny_1xb8-2k_collage-80x80.py'
model = dict(
    decode_head=dict(loss_decode=[
        dict(
            type='CrossEntropyLoss',
            use_sigmoid=False,
            loss_weight=1.0,
            avg_non_ignore=True),
        dict(
            type='LovaszLoss',
            loss_type='multi_class',
            classes='present',
            per_image=False,
            reduction='none',
            loss_weight=1.0),
    ]))
