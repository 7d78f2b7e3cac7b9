# Realistic benchmark arm: the collage CE config with the DeepLabV3+ ASPP head
# replaced by NystromHead (same tiny ResNet-18 backbone, c1 decoder,
# auxiliary head, data and schedule). 80x80 crops give 10x10 = 100 tokens at
# output stride 8 (96x96 validation images: 144). docs/nystrom.md.
_base_ = [
    './deeplabv3plus_r18-tiny_1xb8-2k_collage-80x80.py',
    '../_base_/models/nystrom-head_r18-tiny.py'
]
model = dict(decode_head={{_base_.nystrom_head}})
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys={'decode_head.gamma': dict(decay_mult=0.)}))
