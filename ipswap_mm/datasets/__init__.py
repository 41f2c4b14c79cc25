from .class_index import dataset_class_index
from .pair_sampler import IntraClassPairSampler

__all__ = ['IntraClassPairSampler', 'dataset_class_index']
