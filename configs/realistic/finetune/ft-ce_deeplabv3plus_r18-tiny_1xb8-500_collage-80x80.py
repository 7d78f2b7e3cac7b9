# Fine-tuning protocol (docs/experiments.md): start from a trained CE checkpoint and
# train 25% more iterations (500 after the 2000 of the CE arm) with cross-entropy alone,
# at a tenth of the learning rate with poly decay. The CE arm fine-tuned the
# same way is the baseline. Set the checkpoint on the command line:
#   python tools/train.py THIS_CONFIG --cfg-options load_from=CE_CKPT
#   python tools/ablate.py --dataset collage --iters 500 \
#       --arms ce_ft=configs/realistic/finetune/ft-ce_deeplabv3plus_r18-tiny_1xb8-500_collage-80x80.py ... \
#       --cfg-options load_from=work_dirs/regularizer_experiment/collage/ce/seed{seed}/iter_2000.pth
# (ablate replaces {seed} by each run's seed). load_from loads the weights
# only: optimizer, scheduler and iteration start afresh (mmengine).
_base_ = '../deeplabv3plus_r18-tiny_1xb8-2k_collage-80x80.py'
load_from = None
max_iters = 500
optim_wrapper = dict(optimizer=dict(lr=2e-4))
param_scheduler = [
    dict(type='LinearLR', start_factor=0.1, begin=0, end=25, by_epoch=False),
    dict(type='PolyLR', eta_min=1e-5, power=0.9, begin=25, end=max_iters,
         by_epoch=False)
]
train_cfg = dict(max_iters=max_iters, val_interval=250)
default_hooks = dict(checkpoint=dict(interval=250))
