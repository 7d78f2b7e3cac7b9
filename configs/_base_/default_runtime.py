# Runtime shared by every segreg config: mmseg scope, segreg plugin import,
# TensorBoard + local visualization backends, iteration-based logging.
default_scope = 'mmseg'
custom_imports = dict(imports=['segreg'], allow_failed_imports=False)
# mmengine's Runner plus crash-safe checkpoints (default_hooks.checkpoint of
# type CheckpointHook runs as SafeCheckpointHook), exact --resume (seeded
# augmentation with SeededInfiniteSampler, per-iteration seeding), bad
# images / labels named at load time and a checkpoint-and-stop on SIGTERM /
# SIGUSR1 (PreemptionHook, exit status 75); docs/reliability.md.
runner_type = 'SegregRunner'
# True: a bad image or label is skipped (the next sample is used) and the
# count is logged at the end instead of stopping the run with its name.
skip_bad_samples = False
env_cfg = dict(
    cudnn_benchmark=True,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    # nccl on GPUs; tools/train.py switches to gloo when CUDA is absent.
    dist_cfg=dict(backend='nccl'),
)
vis_backends = [
    dict(type='LocalVisBackend'),
    dict(type='TensorboardVisBackend'),
]
visualizer = dict(
    type='SegLocalVisualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(by_epoch=False)
log_level = 'INFO'
load_from = None
resume = False
# deterministic=True (tools/train.py --deterministic): deterministic cuDNN /
# torch algorithms, needed for bit-identical GPU runs (docs/reliability.md).
randomness = dict(seed=0, deterministic=False)
tta_model = dict(type='SegTTAModel')
