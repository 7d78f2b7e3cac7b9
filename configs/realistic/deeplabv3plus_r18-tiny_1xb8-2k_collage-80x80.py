# The realistic benchmark's CE arm: the demo model (tiny DeepLabV3+ R18) on
# the collage set of real photographs (tools/make_demo_data.py --kind
# collage), cross-entropy only, 2000 iterations (the demo schedule, 2x long).
# Every other arm in this folder is this config plus one loss term.
_base_ = [
    '../_base_/models/deeplabv3plus_r18-tiny.py',
    '../_base_/datasets/collage.py', '../_base_/default_runtime.py',
    '../_base_/schedules/schedule_demo_1k.py'
]
crop_size = (80, 80)
num_classes = 12
max_iters = 2000
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    decode_head=dict(num_classes=num_classes),
    auxiliary_head=dict(num_classes=num_classes))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, begin=0, end=50, by_epoch=False),
    dict(type='PolyLR', eta_min=1e-5, power=0.9, begin=50, end=max_iters,
         by_epoch=False)
]
train_cfg = dict(max_iters=max_iters, val_interval=500)
default_hooks = dict(checkpoint=dict(interval=500))
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'))
