# CPU demo of the Nystrom context head: configs/demo/
# deeplabv3plus_r18-tiny_1xb8-1k_demo-96x96.py (same tiny ResNet-18 backbone,
# data, schedule, auxiliary head, c1 decoder) with the ASPP replaced by
# NystromHead. 96x96 crops give 12x12 = 144 tokens (128x128 val images: 256),
# so 32 landmarks keep the Nystrom approximation active in train and val.
_base_ = [
    './deeplabv3plus_r18-tiny_1xb8-1k_demo-96x96.py',
    '../_base_/models/nystrom-head_r18-tiny.py'
]
custom_imports = dict(imports=['segreg'], allow_failed_imports=False)
model = dict(decode_head={{_base_.nystrom_head}})
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys={'decode_head.gamma': dict(decay_mult=0.)}))
