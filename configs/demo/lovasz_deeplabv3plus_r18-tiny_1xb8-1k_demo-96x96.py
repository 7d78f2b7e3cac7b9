# Demo ablation arm: cross-entropy + mmseg's Lovasz-Softmax loss (Berman et
# al. 2018), over the whole batch (per_image=False, which mmseg requires to
# be paired with reduction='none'), present classes only.
_base_ = './deeplabv3plus_r18-tiny_1xb8-1k_demo-96x96.py'
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
