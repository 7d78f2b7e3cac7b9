# COCO-Stuff164k ablation: cross-entropy + mmseg's DiceLoss on softmax
# probabilities (use_sigmoid=False; mmseg's default is sigmoid).
# Caveat, checked in mmseg 1.4.2 (mmseg/models/losses/dice_loss.py): DiceLoss
# does NOT mask ignore_index pixels. Its `ignore_index` drops the *class
# channel* with that index (none, for 255), the forward's `ignore_index`
# argument is unused, and ignored pixels (COCO-Stuff's unlabelled 255 and the
# crop padding) become all-zero one-hot rows whose predicted probabilities
# still enter the denominator (they are pushed towards zero).
_base_ = '../deeplabv3plus/deeplabv3plus_r50-d8_4xb4-80k_coco-stuff164k-512x512.py'
model = dict(
    decode_head=dict(loss_decode=[
        dict(
            type='CrossEntropyLoss',
            use_sigmoid=False,
            loss_weight=1.0,
            avg_non_ignore=True),
        dict(
            type='DiceLoss',
            use_sigmoid=False,
            activate=True,
            naive_dice=False,
            loss_weight=1.0),
    ]))
