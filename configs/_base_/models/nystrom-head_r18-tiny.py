# The Nystrom context head in place of the tiny DeepLabV3+'s ASPP head
# (configs/_base_/models/deeplabv3plus_r18-tiny.py: the same ResNet-18
# widths, c1 decoder and 12 classes). A config lists this fragment beside its
# CE config and sets model.decode_head={{_base_.nystrom_head}}. 32 landmarks
# keep the Nystrom approximation active on the demo maps (144-256 tokens)
# and the collage maps (100-144 tokens). docs/nystrom.md.
nystrom_head = dict(
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
    num_classes=12,
    norm_cfg=dict(type='BN', requires_grad=True),
    align_corners=False,
    loss_decode=dict(
        type='CrossEntropyLoss',
        use_sigmoid=False,
        loss_weight=1.0,
        avg_non_ignore=True))
