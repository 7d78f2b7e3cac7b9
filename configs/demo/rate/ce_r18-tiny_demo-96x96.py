# Rate-constraint study, baseline arm: the demo CE config, evaluated also on
# the rate metrics of one target class (tools/test.py writes P@R, R@P and
# ROC-AUC of 'traffic light' from the softmax scores into metrics.json;
# segreg.evaluation.rate_metrics). docs/losses.md, "Adding a regularizer".
_base_ = '../deeplabv3plus_r18-tiny_1xb8-1k_demo-96x96.py'
target_class = 9  # 'traffic light' (DEMO_CLASSES), a rare thing class
rate_metrics = dict(target_classes=[target_class], recall=0.8, precision=0.8)
