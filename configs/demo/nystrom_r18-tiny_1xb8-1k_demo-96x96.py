# CPU demo of the Nystrom context head: configs/demo/
# deeplabv3plus_r18-tiny_1xb8-1k_demo-96x96.py (same tiny ResNet-18 backbone,
# data, schedule, auxiliary head, c1 decoder) with the ASPP replaced by
# NystromHead. 96x96 crops give 12x12 = 144 tokens (128x128 val images: 256),
# so 32 landmarks keep the Nystrom approximation active in train and val.
_base_ = './deeplabv3plus_r18-tiny_1xb8-1k_demo-96x96.py'
custom_imports = dict(imports=['segreg'], allow_failed_imports=False)
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
