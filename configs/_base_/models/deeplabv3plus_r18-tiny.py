# CPU-sized DeepLabV3+: a narrow ResNetV1c-18 (16 base channels, output stride
# 8) trained from scratch, BN instead of SyncBN, small ASPP dilations for
# 10-16 pixel feature maps. Used by the demo configs.
_base_ = './deeplabv3plus_r50-d8.py'
norm_cfg = dict(type='BN', requires_grad=True)
model = dict(
    pretrained=None,
    backbone=dict(
        depth=18, stem_channels=16, base_channels=16, norm_cfg=norm_cfg),
    decode_head=dict(
        in_channels=128,
        channels=64,
        dilations=(1, 3, 6, 9),
        c1_in_channels=16,
        c1_channels=12,
        norm_cfg=norm_cfg),
    auxiliary_head=dict(in_channels=64, channels=32, norm_cfg=norm_cfg))
