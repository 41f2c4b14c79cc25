"""Generated datasets in the layouts the stock configs expect (demo, tests, benchmarks)."""
from .coco import write_coco_dataset
from .scenes import Scene, make_scene
from .voc import write_voc_dataset
from .voc_detection import write_voc_detection_dataset

__all__ = ['Scene', 'make_scene', 'write_coco_dataset', 'write_voc_dataset', 'write_voc_detection_dataset']
