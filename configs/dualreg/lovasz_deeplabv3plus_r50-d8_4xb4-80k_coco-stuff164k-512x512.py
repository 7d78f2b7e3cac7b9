# COCO-Stuff164k ablation: cross-entropy + mmseg's Lovasz-Softmax over the
# whole batch (per_image=False needs reduction='none' in mmseg 1.x).
_base_ = '../deeplabv3plus/deeplabv3plus_r50-d8_4xb4-80k_coco-stuff164k-512x512.py'
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
