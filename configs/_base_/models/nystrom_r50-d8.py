# Nystrom-context DeepLabV3+ (ResNetV1c-50, output stride 8): DeepLabV3+ with
# its ASPP replaced by segreg's NystromHead (conv -> multi-head Nystrom
# self-attention over all H x W positions -> conv -> concat input), keeping
# the low-level (c1, stride 4) decoder. Backbone, auxiliary FCN head and data
# preprocessor come from deeplabv3plus_r50-d8.py. See docs/nystrom.md.
_base_ = './deeplabv3plus_r50-d8.py'
norm_cfg = dict(type='SyncBN', requires_grad=True)
model = dict(
    decode_head=dict(
        _delete_=True,
        type='NystromHead',
        in_channels=2048,
        in_index=3,
        channels=512,
        num_heads=8,  # 64 channels per head
        num_landmarks=256,  # 64x64 = 4096 tokens at a 512x512 crop
        pinv_iters=6,
        conv_kernel_size=3,  # depthwise 3x3 skip on the values
        gamma_init=0.0,
        concat_input=True,
        c1_in_channels=256,
        c1_channels=48,
        dropout_ratio=0.1,
        num_classes=171,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(
            type='CrossEntropyLoss',
            use_sigmoid=False,
            loss_weight=1.0,
            avg_non_ignore=True)))
