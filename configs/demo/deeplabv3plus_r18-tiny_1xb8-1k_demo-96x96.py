# The CPU demo: tiny DeepLabV3+ on the embedded demo data (12 classes, 8 of
# them small and rare), cross-entropy only. Baseline arm of the demo ablation.
_base_ = [
    '../_base_/models/deeplabv3plus_r18-tiny.py',
    '../_base_/datasets/demo.py', '../_base_/default_runtime.py',
    '../_base_/schedules/schedule_demo_1k.py'
]
crop_size = (96, 96)
num_classes = 12
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    decode_head=dict(num_classes=num_classes),
    auxiliary_head=dict(num_classes=num_classes))
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'))
