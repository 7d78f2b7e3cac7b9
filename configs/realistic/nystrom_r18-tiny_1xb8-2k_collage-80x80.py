# Realistic benchmark arm: the collage CE config with the DeepLabV3+ ASPP head
# replaced by NystromHead (same tiny ResNet-18 backbone, c1 decoder,
# auxiliary head, data and schedule). 80x80 crops give 10x10 = 100 tokens at
# output stride 8 (96x96 validation images: 144), so 32 landmarks keep the
# Nystrom approximation active. docs/nystrom.md.
_base_ = './deeplabv3plus_r18-tiny_1xb8-2k_collage-80x80.py'
num_classes = 12
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    decode_head=dict(
        _delete_=True,
        type='NystromHead',
        in_channels=128,
        in_index=3,
        channels=64,
        num_heads=4,  # 16 channels per head
        num_landmarks=32,
        pinv_iters=6,
        conv_kernel_size=3,
        gamma_init=0.0,
        concat_input=True,
        c1_in_channels=16,
        c1_channels=12,
        dropout_ratio=0.1,
        num_classes=num_classes,
        norm_cfg=norm_cfg,
        align_corners=False,
        loss_decode=dict(
            type='CrossEntropyLoss',
            use_sigmoid=False,
            loss_weight=1.0,
            avg_non_ignore=True)))
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys={'decode_head.gamma': dict(decay_mult=0.)}))
