"""Datasets, the demo data generator and data transforms."""
from . import transforms  # noqa: F401
from .demo_data import DEMO_CLASSES, generate_demo_dataset  # noqa: F401
from .coco_stuff import (COCO_STUFF_CLASSES, STUFF_ONLY_CLASSES,  # noqa: F401
                         COCOStuffStuffOnlyDataset)
from .guarded_dataset import GuardedDataset  # noqa: F401
from .sample_checks import BadSampleError  # noqa: F401
from .seeded_sampler import SampleKey, SeededInfiniteSampler  # noqa: F401
