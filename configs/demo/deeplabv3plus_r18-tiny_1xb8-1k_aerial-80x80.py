# The demo model and schedule on the second synthetic set (aerial land cover,
# tools/make_demo_data.py --kind aerial), for the regularizer experiments.
_base_ = [
    '../_base_/models/deeplabv3plus_r18-tiny.py',
    '../_base_/datasets/demo_aerial.py', '../_base_/default_runtime.py',
    '../_base_/schedules/schedule_demo_1k.py'
]
crop_size = (80, 80)
num_classes = 10
data_preprocessor = dict(size=crop_size)
model = dict(
    data_preprocessor=data_preprocessor,
    decode_head=dict(num_classes=num_classes),
    auxiliary_head=dict(num_classes=num_classes))
env_cfg = dict(cudnn_benchmark=False, dist_cfg=dict(backend='gloo'))
