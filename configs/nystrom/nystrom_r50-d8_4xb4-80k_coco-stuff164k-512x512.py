# Nystrom-context DeepLabV3+ R50-D8 on COCO-Stuff164k, 4 GPUs x 4 images, 80k
# iterations: the same data, schedule and runtime as
# configs/deeplabv3plus/deeplabv3plus_r50-d8_4xb4-80k_coco-stuff164k-512x512.py
# with the ASPP head replaced by NystromHead.
_base_ = [
    '../_base_/models/nystrom_r50-d8.py',
    '../_base_/datasets/coco-stuff164k.py', '../_base_/default_runtime.py',
    '../_base_/schedules/schedule_80k.py'
]
custom_imports = dict(imports=['segreg'], allow_failed_imports=False)
crop_size = (512, 512)
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    decode_head=dict(num_classes=171),
    auxiliary_head=dict(num_classes=171))
# the context branch's scalar gate is not weight-decayed
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys={'decode_head.gamma': dict(decay_mult=0.)}))
