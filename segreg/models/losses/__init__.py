"""segreg.models.losses."""
from .pixel_metric_loss import (ClassTerms, PixelBatch,  # noqa: F401
                                PixelMetricLoss)
from .hinge_bound_loss import HingeBoundLoss  # noqa: F401
from .exact_lp_loss import ExactLPLoss  # noqa: F401
from .persistent_dual_loss import PersistentDualLoss  # noqa: F401
from .dataset_dual_loss import DatasetDualLoss  # noqa: F401
from .dataset_ratio_loss import DatasetRatioLoss  # noqa: F401
from .dual_metric_loss import DualFbetaLoss, DualIoULoss  # noqa: F401
from .rate_losses import (PrecisionAtRecallLoss,  # noqa: F401
                          RecallAtPrecisionLoss, ROCAUCLoss)
from .smeasure_loss import SMeasureLoss  # noqa: F401
from .jaccard_metric_loss import JaccardMetricLoss  # noqa: F401
from .masked_dice_loss import MaskedDiceLoss  # noqa: F401
