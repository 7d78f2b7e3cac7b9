# COCO-Stuff164k ablation: DeepLabV3+ R-50-D8 80k with cross-entropy + the
# class-wise dual-projected IoU loss. The CE-alone arm is the plain config
# ../deeplabv3plus/deeplabv3plus_r50-d8_4xb4-80k_coco-stuff164k-512x512.py.
# Under DDP the loss all-reduces its class sums (global-batch metric).
_base_ = '../deeplabv3plus/deeplabv3plus_r50-d8_4xb4-80k_coco-stuff164k-512x512.py'
num_classes = 171
model = dict(
    decode_head=dict(loss_decode=[
        dict(
            type='CrossEntropyLoss',
            use_sigmoid=False,
            loss_weight=1.0,
            avg_non_ignore=True),
        # the defaults, spelled out: the direct hinge bound of every
        # class (no per-batch LP) on every 4th pixel; docs/experiments.md
        dict(
            type='DualIoULoss',
            num_classes=num_classes,
            solver='direct',
            sample_stride=4,
            loss_weight=1.0),
    ]))
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys={'log_scale': dict(decay_mult=0.0)}))
custom_hooks = [dict(type='DualAscentHook', log_interval=50)]
