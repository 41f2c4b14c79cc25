"""Generated datasets in the layouts the stock configs expect (demo, tests, benchmarks)."""
from .scenes import Scene, make_scene
from .voc import write_voc_dataset

__all__ = ['Scene', 'make_scene', 'write_voc_dataset']
