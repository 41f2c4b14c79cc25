"""Which classes every training image holds: the input of intra-class pairing.

Two sources, chosen from what the dataset's ``get_data_info`` returns:

* ``'seg_map'`` (MMSegmentation): the label maps are read once, with the dataset's
  ``label_map`` and ``reduce_zero_label`` applied as ``LoadAnnotations`` does, and the
  result is cached as JSON, keyed by a fingerprint of every label file's path, size and
  modification time, so a changed dataset is rescanned.
* ``'instances'`` (MMDetection): the ``bbox_label`` of every instance whose
  ``ignore_flag`` is 0 (crowd and ignored boxes do not make a class shared) and, where the
  dataset's pipeline loads masks, whose mask ``LoadAnnotations`` accepts (it ignores an
  object whose polygons all have fewer than three points). Nothing to read from disk,
  nothing cached.

Each image's classes are ordered by prominence (pixels, or number of boxes), most first.
Indices that read one image (a repeated dataset, or joined lists naming the same
``img_path``) get one image id, so that pairing does not pair an image with itself.
"""
from __future__ import annotations

import hashlib
import inspect
import json
import os
import os.path as osp
import tempfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Dict, FrozenSet, List, NamedTuple, Optional, Sequence, Tuple, Union

import numpy as np
from mmengine.dist import all_gather_object, broadcast_object_list, get_dist_info
from mmengine.logging import MMLogger, print_log

from ..core.pairing import ClassSets

CACHE_FORMAT = 'ipswap_mm.class_index/2'
CLASS_SOURCES = ('auto', 'seg_map', 'instances')
BACKEND_ARGS_KEY = 'ipswap_backend_args'  # a dataset's backend_args, carried in its data infos
INSTANCE_CLASSES_KEY = 'ipswap_instance_classes'  # a detection image's classes, read off its annotations
INFO_KEYS_KEY = 'ipswap_info_keys'  # the keys of a data info with neither label map nor annotations
#: What the index keeps of a data info; the rest (a detection image's annotations) goes as each is read.
KEPT_INFO_KEYS = ('img_path', 'seg_map_path', 'label_map', 'reduce_zero_label')
#: Class names that ``background_classes='auto'`` takes for background (compared lower-case).
BACKGROUND_NAMES = ('background', 'bg', '_background_', '__background__')

# (class ids, counts) per image, most prominent first.
ClassCounts = Tuple[List[int], List[int]]


class ClassIndex(NamedTuple):
    """The input of intra-class pairing, one entry per dataset index."""

    class_sets: ClassSets
    """Foreground class ids of every index, most prominent first (``class_sets[i]``)."""
    image_ids: np.ndarray
    """``(N,)`` int64: indices with one id read one image."""
    excluded: FrozenSet[int] = frozenset()
    """Label values that are no class here: the background classes and, for label maps, the
    ignore index."""


def default_cache_dir() -> Optional[str]:
    """``<work_dir>/ipswap_cache`` of the running MMEngine runner, or None outside one.

    The runner's logger writes to ``<work_dir>/<timestamp>/<timestamp>.log``.
    """
    log_file = getattr(MMLogger.get_current_instance(), 'log_file', None)
    if not log_file:
        return None
    return osp.join(osp.dirname(osp.dirname(osp.abspath(log_file))), 'ipswap_cache')


def _detect_source(info: dict) -> str:
    """The class source of a data info as :func:`_slim_info` keeps it."""
    if INSTANCE_CLASSES_KEY in info:  # MMDetection (its COCO infos also carry a seg_map_path for panoptic use)
        return 'instances'
    if info.get('seg_map_path'):
        return 'seg_map'
    raise ValueError('train_dataloader.sampler (IntraClassPairSampler) cannot tell the classes of an '
                     'image: its data info has neither "seg_map_path" (MMSegmentation) nor '
                     f'"instances" (MMDetection); keys present: {info.get(INFO_KEYS_KEY, sorted(info))}')


def _dataset_infos(dataset, read_instances: bool = True) -> Tuple[List[dict], np.ndarray]:
    """The data infos of ``dataset``'s distinct entries, as :func:`_slim_info` keeps them, and
    ``(len(dataset),)`` the entry each index reads. ``read_instances``: read a detection
    image's classes off its annotations (not when the classes come from label maps).

    MMEngine's ``RepeatDataset`` and ``ClassBalancedDataset`` repeat the entries of the
    dataset they wrap (MMSegmentation's DRIVE config: 20 images, 40000 times): each entry is
    read once, not once per repetition. ``ConcatDataset``: its datasets one after another.
    MMDetection's and MMSegmentation's ``MultiImageMixDataset``: the dataset it wraps, index
    for index (its mixing transforms bring other images into a sample: unpaired).
    """
    from mmengine.dataset import ClassBalancedDataset, ConcatDataset, RepeatDataset
    if isinstance(dataset, RepeatDataset):
        infos, index = _dataset_infos(dataset.dataset, read_instances)
        return infos, np.tile(index, dataset.times)
    if isinstance(dataset, ClassBalancedDataset):
        dataset.full_init()  # draws the repeat indices
        infos, index = _dataset_infos(dataset.dataset, read_instances)
        return infos, index[np.asarray(dataset.repeat_indices, dtype=np.int64)]
    if type(dataset).__name__ == 'MultiImageMixDataset' and hasattr(dataset, 'dataset'):
        return _dataset_infos(dataset.dataset, read_instances)
    if isinstance(dataset, ConcatDataset):
        infos, indices = [], []
        for part in dataset.datasets:
            part_infos, part_index = _dataset_infos(part, read_instances)
            indices.append(part_index + len(infos))
            infos += part_infos
        return infos, np.concatenate(indices) if indices else np.zeros(0, dtype=np.int64)
    if not hasattr(dataset, 'get_data_info'):
        raise TypeError(f'train_dataloader.dataset ({type(dataset).__name__}) has no get_data_info(); '
                        'IntraClassPairSampler needs an MMEngine BaseDataset or a wrapper of one')
    backend_args = getattr(dataset, 'backend_args', None)
    mask_loading = _mask_loading(dataset) if read_instances else None
    infos = [_slim_info(dataset.get_data_info(i), backend_args, mask_loading, read_instances)
             for i in range(len(dataset))]
    return infos, np.arange(len(dataset), dtype=np.int64)


def _slim_info(info: dict, backend_args: Optional[dict], mask_loading: Optional[dict],
               read_instances: bool = True) -> dict:
    """What the index needs of a data info (:data:`KEPT_INFO_KEYS`, the dataset's
    ``backend_args``, a detection image's classes), taken as each info is read: the whole
    infos of a large detection dataset, held at once, were gigabytes on rank 0 (a review's
    COCO-like 118k images: 1.3 GB; Objects365-like, about 13 GB by extrapolation)."""
    slim = {key: info[key] for key in KEPT_INFO_KEYS if key in info}
    if backend_args is not None:  # how this dataset's pipeline reads its files (object stores)
        slim[BACKEND_ARGS_KEY] = backend_args
    if 'instances' in info and read_instances:
        slim[INSTANCE_CLASSES_KEY] = _instance_classes(info['instances'], mask_loading)
    elif 'instances' not in info and not info.get('seg_map_path'):
        slim[INFO_KEYS_KEY] = sorted(info)
    return slim


def _mask_loading(dataset) -> Optional[dict]:
    """``dict(poly2mask=...)`` of ``dataset``'s pipeline's ``LoadAnnotations(with_mask=True)``;
    None when its pipeline loads no masks."""
    from ..engine.config_walk import pipeline_transforms
    for transform in pipeline_transforms(dataset):
        if type(transform).__name__ == 'LoadAnnotations' and getattr(transform, 'with_mask', False):
            return dict(poly2mask=bool(getattr(transform, 'poly2mask', True)))
    return None


def _valid_mask(mask, poly2mask: bool) -> bool:
    """Whether MMDetection 3.3's ``LoadAnnotations._process_masks`` keeps an instance's mask
    (it ignores the instance otherwise): polygons need one with at least three points; any
    other form needs ``poly2mask``, and an RLE dict its ``size`` and ``counts`` as a list or
    a string."""
    if isinstance(mask, list):
        return any(len(polygon) % 2 == 0 and len(polygon) >= 6 for polygon in mask)
    if not poly2mask:
        return False
    if isinstance(mask, dict):
        return (mask.get('counts') is not None and mask.get('size') is not None
                and isinstance(mask['counts'], (list, str)))
    return True


def _instance_classes(instances: Sequence[dict], mask_loading: Optional[dict]) -> ClassCounts:
    """Classes of a detection image's ``instances`` and how many objects of each, most first;
    crowd and ignored objects (``ignore_flag``), and those whose mask the pipeline's
    ``LoadAnnotations`` ignores (``mask_loading``, see :func:`_valid_mask`), not counted."""
    labels = Counter(int(inst['bbox_label']) for inst in instances
                     if not inst.get('ignore_flag', 0) and (mask_loading is None or 'mask' not in inst
                                                            or _valid_mask(inst['mask'], mask_loading['poly2mask'])))
    ranked = sorted(labels.items(), key=lambda item: (-item[1], item[0]))  # most first, then the smaller id
    return [cls for cls, _ in ranked], [count for _, count in ranked]


def read_label_classes(path: str, label_map: Optional[Dict[int, int]], reduce_zero_label: bool,
                       backend_args: Optional[dict] = None) -> ClassCounts:
    """Classes and pixel counts of one label map, as ``mmseg``'s ``LoadAnnotations`` sees it."""
    import mmcv
    from mmengine import fileio
    try:
        seg = mmcv.imfrombytes(fileio.get(path, backend_args=backend_args), flag='unchanged',
                               backend='pillow')
    except Exception as error:  # noqa: BLE001 - re-raised with the file named
        raise OSError(f'cannot read label map {path!r} (check train_dataloader.dataset.data_root and '
                      f'data_prefix.seg_map_path): {error}') from error
    if seg is not None and seg.ndim == 3 and seg.shape[2] == 1:
        seg = seg[..., 0]
    if seg is None or seg.ndim != 2:
        raise OSError(f'label map {path!r} is not a single-channel image')
    # as LoadAnnotations: 8-bit labels, the zero label reduced first, then the label map
    seg = seg.astype(np.uint8)
    if reduce_zero_label:
        seg[seg == 0] = 255
        seg = seg - 1
        seg[seg == 254] = 255
    if label_map:
        original = seg.copy()
        for old, new in label_map.items():
            seg[original == old] = new
    classes, counts = np.unique(seg, return_counts=True)
    order = np.argsort(-counts, kind='stable')
    return classes[order].tolist(), counts[order].tolist()


def _source_of(function: Callable) -> str:
    try:
        return inspect.getsource(function)
    except (OSError, TypeError):  # no source installed: the format alone
        return ''


#: The source of :func:`read_label_classes`, in every cache fingerprint: a cache that another
#: way of reading label maps wrote is scanned again (commit 43fa954 changed the rule and not
#: the format, and older caches were read as if current).
READING_RULE = _source_of(read_label_classes)


def _fingerprint(infos: Sequence[dict]) -> str:
    digest = hashlib.sha256(CACHE_FORMAT.encode())
    digest.update(READING_RULE.encode())
    for info in infos:
        path = info['seg_map_path']
        try:
            stat = os.stat(path)
            stamp = (stat.st_size, stat.st_mtime_ns)
        except OSError:
            stamp = None
        label_map = sorted((info.get('label_map') or {}).items())
        digest.update(json.dumps([path, stamp, label_map, bool(info.get('reduce_zero_label'))]).encode())
    return digest.hexdigest()


def _load_cache(path: str, fingerprint: str, num_images: int) -> Optional[List[ClassCounts]]:
    try:
        with open(path) as file:
            cache = json.load(file)
        entries = [(list(c), list(n)) for c, n in zip(cache['classes'], cache['counts'])]
        stored = (cache['format'], cache['fingerprint'], cache['num_images'])
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as error:
        print_log(f'IntraClassPairSampler: class index cache {path} is unreadable ({error}); rescanning.',
                  logger='current', level=30)
        return None
    if stored != (CACHE_FORMAT, fingerprint, num_images) or len(entries) != num_images:
        # its name holds the fingerprint's start: an edited file, or a collision of that start
        print_log(f'IntraClassPairSampler: class index cache {path} does not match this dataset '
                  f'({len(entries)} entries for {stored[2]} images, fingerprint {str(stored[1])[:12]}...; '
                  f'this dataset: {num_images} images, fingerprint {fingerprint[:12]}...); rescanning.',
                  logger='current', level=30)
        return None
    return entries


def _save_cache(path: str, fingerprint: str, entries: List[ClassCounts]) -> None:
    payload = dict(format=CACHE_FORMAT, fingerprint=fingerprint, num_images=len(entries),
                   classes=[c for c, _ in entries], counts=[n for _, n in entries])
    try:
        os.makedirs(osp.dirname(path), exist_ok=True)
        handle, tmp = tempfile.mkstemp(dir=osp.dirname(path), suffix='.tmp')
        with os.fdopen(handle, 'w') as file:
            json.dump(payload, file)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp's 0600 would hide it from the other users of a shared cache_dir
        os.replace(tmp, path)
    except OSError as error:
        print_log(f'IntraClassPairSampler: cannot write the class index cache {path} ({error}); '
                  'continuing without it (set train_dataloader.sampler.cache_dir to a writable folder '
                  'to avoid rescanning next time).', logger='current', level=30)


def _umask() -> int:
    """The process's umask: read from ``/proc`` where there is one (setting it to read it
    back, as elsewhere, changes it for every thread for a moment)."""
    try:
        with open('/proc/self/status') as status:
            return next(int(line.split()[1], 8) for line in status if line.startswith('Umask:'))
    except (OSError, StopIteration, ValueError, IndexError):
        umask = os.umask(0o022)
        os.umask(umask)
        return umask


def _cached_seg_maps(infos: Sequence[dict], cache_dir: Optional[str]) -> Tuple[Optional[List[ClassCounts]], tuple]:
    """The cached classes of the label maps, or None; and ``(path, fingerprint)`` to save them
    under (``()`` without a cache folder)."""
    if not cache_dir:
        return None, ()
    fingerprint = _fingerprint(infos)
    cache_path = osp.join(cache_dir, f'class_index_{fingerprint[:16]}.json')
    cached = _load_cache(cache_path, fingerprint, len(infos))
    if cached is not None:
        print_log(f'IntraClassPairSampler: class index loaded from {cache_path}', logger='current')
    return cached, (cache_path, fingerprint)


def _read_seg_maps(infos: Sequence[dict], workers: int, backend_args: Optional[dict]) -> List[ClassCounts]:
    def read(info: dict) -> ClassCounts:
        return read_label_classes(info['seg_map_path'], info.get('label_map'), bool(info.get('reduce_zero_label')),
                                  info.get(BACKEND_ARGS_KEY) if backend_args is None else backend_args)

    with ThreadPoolExecutor(max(1, workers)) as pool:
        return list(pool.map(read, infos))


def _read_seg_maps_across_ranks(get_infos: Callable[[], Sequence[dict]], workers: int, backend_args: Optional[dict],
                                rank: int, world_size: int) -> List[ClassCounts]:
    """Every rank reads every ``world_size``-th label map and all ranks get all of them: a
    large dataset's first scan is not one process's work while the others wait in a
    collective that may time out (NCCL's watchdog). An error on any rank, reading the
    dataset's infos (``get_infos``) or a map, is raised on all."""
    try:
        infos = get_infos()
        print_log(f'IntraClassPairSampler: scanning {len(infos)} label maps once for their classes'
                  + (f' ({world_size} ranks, a share each)' if world_size > 1 else ''), logger='current')
        share = _read_seg_maps(infos[rank::world_size], workers, backend_args)
    except Exception as error:  # noqa: BLE001 - every rank re-raises it below
        if world_size == 1:
            raise
        share = error
    if world_size == 1:
        return share
    shares = all_gather_object(share)
    for part in shares:
        if isinstance(part, Exception):
            raise part
    entries: list = [None] * len(infos)
    for source_rank, part in enumerate(shares):
        entries[source_rank::world_size] = part
    return entries


def _entry_images(infos: Sequence[dict]) -> np.ndarray:
    """``(len(infos),)`` one id per image: entries with the same ``img_path`` share it
    (compared normalised: ``./data/a.jpg`` is ``data/a.jpg``)."""
    paths = [osp.normpath(info['img_path']) if info.get('img_path') else ('entry', number)
             for number, info in enumerate(infos)]
    ids: dict = {}
    return np.fromiter((ids.setdefault(path, len(ids)) for path in paths), dtype=np.int64, count=len(paths))


def _index_plan(dataset, source: str, cache_dir: Optional[str]) -> Tuple[List[dict], tuple]:
    """The data infos, and what every rank needs: the class source used (``'auto'``
    resolved), the classes of every distinct entry (a :class:`ClassSets`; None where label
    maps are still to be read), the entry of every index (see :func:`_dataset_infos`), the image of every entry,
    and where to cache label maps' classes once read."""
    infos, index = _dataset_infos(dataset, read_instances=source != 'seg_map')
    if not len(index):
        raise ValueError('train_dataloader.dataset is empty: nothing to pair')
    if source == 'auto':
        source = _detect_source(infos[0])
    cache: tuple = ()
    if source == 'instances':
        classes = _gathered([info.get(INSTANCE_CLASSES_KEY, ([], [])) for info in infos])
    else:
        entries, cache = _cached_seg_maps(infos, cache_dir)
        classes = None if entries is None else _gathered(entries)
    return infos, (source, classes, index, _entry_images(infos), cache)


def _gathered(entries: Sequence[ClassCounts]) -> ClassSets:
    """The classes of ``entries`` in one :class:`ClassSets`: what rank 0 sends every rank, as
    a few arrays (as lists of numbers, 1.7 million Objects365 images took 3 s and about 590
    MB to unpickle on every rank)."""
    return ClassSets.of([classes for classes, _ in entries])


def dataset_class_names(dataset) -> tuple:
    """The ``metainfo['classes']`` of ``dataset``, ``()`` when it names none.

    MMDetection's ``ConcatDataset`` of datasets whose metainfo differ (VOC2007 and VOC2012
    without the stock config's ``ignore_keys=['dataset_type']``) holds one metainfo per
    dataset: their classes must be the same, or class id ``k`` names different classes in
    different images, and pairing on it would pair unrelated objects.
    """
    metainfo = getattr(dataset, 'metainfo', None) or {}
    parts = metainfo if isinstance(metainfo, (list, tuple)) else [metainfo]
    names = [tuple((part or {}).get('classes') or ()) for part in parts]
    if any(other != names[0] for other in names[1:]):
        raise ValueError('train_dataloader.dataset joins datasets whose metainfo classes differ '
                         f'({" / ".join(str(list(n)) for n in names)}): a class id would name different '
                         'classes in different images, and IntraClassPairSampler pairs images on class ids. '
                         'Give every dataset the same metainfo=dict(classes=...).')
    return names[0] if names else ()


def background_class_ids(class_names: Sequence[str],
                         background_classes: Union[str, int, Sequence[Union[int, str]], None]) -> List[int]:
    """Resolve ``background_classes``: ``'auto'`` means every class whose name is one of
    :data:`BACKGROUND_NAMES`; otherwise class ids or class names, one or a list."""
    key = 'train_dataloader.sampler.background_classes'
    if background_classes is None:
        return []
    if background_classes == 'auto':
        return [i for i, name in enumerate(class_names) if str(name).lower() in BACKGROUND_NAMES]
    try:
        values = [background_classes] if isinstance(background_classes, (str, int)) else list(background_classes)
    except TypeError:
        values = [background_classes]  # reported below
    ids = []
    for value in values:
        if isinstance(value, str):
            if value not in class_names:
                raise ValueError(f"{key}: {value!r} is not a class of the dataset ('auto', None, class ids "
                                 f'or class names of metainfo classes: {list(class_names)})')
            ids.append(list(class_names).index(value))
        elif isinstance(value, (int, np.integer)) and not isinstance(value, bool) and value >= 0:
            ids.append(int(value))
        else:
            raise ValueError(f"{key} must be 'auto', None, or class ids (ints >= 0) or class names, one or a "
                             f'list; got {background_classes!r}')
    return ids


def dataset_class_index(dataset,
                        source: str = 'auto',
                        ignore_index: int = 255,
                        background_classes: Union[str, int, Sequence[Union[int, str]], None] = 'auto',
                        cache_dir: Optional[str] = None,
                        workers: int = 8,
                        backend_args: Optional[dict] = None) -> ClassIndex:
    """Foreground classes of every image of ``dataset``, most prominent first, and which
    indices read the same image.

    Under distributed training rank 0 builds (or loads) the index and broadcasts it; label
    maps not cached yet are read by all ranks, a share each, and rank 0 writes the cache.

    Args:
        dataset: An MMEngine dataset (or ``ConcatDataset``/``RepeatDataset`` wrapper).
        source: ``'auto'``, ``'seg_map'`` or ``'instances'``.
        ignore_index: Label-map value that is not a class. Label maps only: every class id
            of a detection annotation is a class (LVIS and Objects365 have a class 255).
        background_classes: Classes that never make two images a pair: ``'auto'`` (the
            classes named as in :data:`BACKGROUND_NAMES`), ``None``, or class ids or names.
        cache_dir: Folder of the segmentation cache; ``None``: the run's work dir.
        workers: Threads reading label maps.
        backend_args: MMEngine file backend arguments for reading label maps; ``None``: each
            dataset's own ``backend_args`` (as its ``LoadAnnotations`` reads them). On a
            storage without local files the cache is keyed by the maps' paths alone.
    """
    if source not in CLASS_SOURCES:
        raise ValueError(f'train_dataloader.sampler.class_source must be one of {CLASS_SOURCES}, '
                         f'got {source!r}')
    if cache_dir is None:
        cache_dir = default_cache_dir()
    class_names = dataset_class_names(dataset)
    excluded = set(background_class_ids(class_names, background_classes))
    rank, world_size = get_dist_info()
    infos, payload = None, [None]
    if rank == 0:
        try:
            infos, plan = _index_plan(dataset, source, cache_dir)
            payload = [plan]
        except Exception as error:  # noqa: BLE001 - every rank re-raises it below
            if world_size == 1:
                raise
            payload = [error]
    if world_size > 1:
        broadcast_object_list(payload, src=0)
    if isinstance(payload[0], Exception):
        raise payload[0]
    resolved_source, classes, index, entry_images, cache = payload[0]
    if classes is None:  # label maps not cached yet
        entries = _read_seg_maps_across_ranks(lambda: infos if infos is not None else _dataset_infos(dataset, False)[0],
                                              workers, backend_args, rank, world_size)
        if rank == 0 and cache:
            _save_cache(*cache, entries)
        classes = _gathered(entries)
    if resolved_source == 'seg_map':
        excluded.add(int(ignore_index))
        _check_label_values(classes, infos, len(class_names), excluded)
    # the foreground classes of every entry, in their order
    sets = classes.select((classes.flat >= 0) & ~np.isin(classes.flat, sorted(excluded)))
    _report_classes(class_names, excluded, background_classes, resolved_source, sets)
    return ClassIndex(sets.take(index), entry_images[index], frozenset(excluded))


def _check_label_values(classes: ClassSets, infos: Optional[Sequence[dict]], num_classes: int,
                        excluded: set) -> None:
    """Raise, naming label maps, if any holds a value that is neither a class (``0 ..
    num_classes - 1``) nor excluded (the ignore index): the task loss would fail on it mid-
    training, with no file named. Not checked when the dataset names no classes."""
    if not num_classes:
        return
    wrong = (classes.flat >= num_classes) & ~np.isin(classes.flat, sorted(excluded))
    if not wrong.any():
        return
    by_map: Dict[int, set] = {}
    for number, value in zip(classes.owners[wrong].tolist(), classes.flat[wrong].tolist()):
        by_map.setdefault(number, set()).add(value)
    bad = [(number, sorted(found)) for number, found in sorted(by_map.items())]
    named = [f"{infos[number]['seg_map_path'] if infos is not None else f'entry {number}'}: {values}"
             for number, values in bad[:3]]
    raise ValueError(f'{len(bad)} label maps hold values that are no class of the dataset ({num_classes} classes '
                     f'in its metainfo) and not train_dataloader.sampler.ignore_index ({sorted(excluded)} are '
                     f'excluded): {"; ".join(named)}{" ..." if len(bad) > 3 else ""}. Fix the label maps '
                     '(or the dataset\'s label_map / reduce_zero_label), or set the sampler\'s ignore_index to the '
                     'value the labels use for "ignore" (the decode head\'s ignore_index)')


def _report_classes(class_names: Sequence[str], excluded: set, background_classes, source: str,
                    sets: ClassSets) -> None:
    """Log which label values never pair images; warn when no image has a class to pair on."""
    names = [f'{c} ({class_names[c]})' if 0 <= c < len(class_names) else str(c) for c in sorted(excluded)]
    print_log(f'IntraClassPairSampler: classes from {source!r}; values that never make a pair '
              f'(background_classes={background_classes!r}, and for label maps ignore_index): '
              f'{", ".join(names) or "none"}', logger='current')
    if len(sets) and not sets.lengths.any():
        print_log(f'IntraClassPairSampler: no image holds a class to pair on (class_source={source!r}, excluded '
                  f'{sorted(excluded)}): every pair is random. Check train_dataloader.sampler.class_source and '
                  'background_classes', logger='current', level=30)
