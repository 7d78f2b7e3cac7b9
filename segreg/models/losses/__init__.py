"""segreg.models.losses."""
from .dual_metric_loss import DualFbetaLoss, DualIoULoss  # noqa: F401
from .smeasure_loss import SMeasureLoss  # noqa: F401
from .jaccard_metric_loss import JaccardMetricLoss  # noqa: F401
from .masked_dice_loss import MaskedDiceLoss  # noqa: F401
