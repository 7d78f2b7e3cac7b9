"""segreg.datasets.transforms."""
from .albu import AlbuSeg, build_albu  # noqa: F401
from .size_label import (PackSegInputsWithMeta, SizeLabel,  # noqa: F401
                         compute_size_label)
