"""segreg.models.losses."""
from .dual_metric_loss import DualFbetaLoss, DualIoULoss  # noqa: F401
from .smeasure_loss import SMeasureLoss  # noqa: F401
