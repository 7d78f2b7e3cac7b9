# Aerial (second synthetic set) arm, the anchors of the realistic benchmark: CE + the Jaccard metric loss (Wang & Blaschko
# 2023, segreg's JaccardMetricLoss: batch-level, present classes, ignore
# pixels masked).
_base_ = './deeplabv3plus_r18-tiny_1xb8-1k_aerial-80x80.py'
model = dict(
    decode_head=dict(loss_decode=[
        dict(
            type='CrossEntropyLoss',
            use_sigmoid=False,
            loss_weight=1.0,
            avg_non_ignore=True),
        dict(type='JaccardMetricLoss', loss_weight=1.0),
    ]))
