import json
import os
import shutil

import numpy as np
import pytest
from mmengine.dataset import BaseDataset, ClassBalancedDataset, ConcatDataset, RepeatDataset
from PIL import Image

from ipswap_mm.datasets import class_index
from ipswap_mm.datasets.class_index import dataset_class_index, read_label_classes


class LabelMapDataset:
    """The part of an MMSegmentation dataset the class index reads."""

    metainfo = dict(classes=('background', 'cat', 'dog', 'bird'))

    def __init__(self, paths, reduce_zero_label=False, label_map=None):
        self.paths = paths
        self.reduce_zero_label = reduce_zero_label
        self.label_map = label_map

    def __len__(self):
        return len(self.paths)

    def get_data_info(self, index):
        return dict(seg_map_path=self.paths[index], reduce_zero_label=self.reduce_zero_label,
                    label_map=self.label_map)


def write_maps(folder, maps):
    paths = []
    for i, array in enumerate(maps):
        path = os.path.join(folder, f'{i}.png')
        Image.fromarray(np.asarray(array, dtype=np.uint8)).save(path)
        paths.append(path)
    return paths


@pytest.fixture
def maps_dataset(tmp_path):
    maps = [np.array([[0, 1, 1], [1, 1, 255]]), np.array([[0, 0, 2], [2, 3, 3]]), np.zeros((2, 3))]
    (tmp_path / 'maps').mkdir()
    return LabelMapDataset(write_maps(str(tmp_path / 'maps'), maps))


def test_classes_ordered_by_area_background_and_ignore_dropped(maps_dataset, tmp_path):
    sets = dataset_class_index(maps_dataset, cache_dir=str(tmp_path / 'cache')).class_sets
    assert [s.tolist() for s in sets] == [[1], [2, 3], []]


def test_background_kept_when_asked(maps_dataset, tmp_path):
    sets = dataset_class_index(maps_dataset, background_classes=None, cache_dir=str(tmp_path / 'cache')).class_sets
    assert [s.tolist() for s in sets] == [[1, 0], [0, 2, 3], [0]]


def test_reduce_zero_label_and_label_map(tmp_path):
    path = write_maps(str(tmp_path), [np.array([[0, 1, 2, 2]])])[0]
    assert read_label_classes(path, None, True)[0] == [1, 0, 255]  # 2 -> 1 (twice), 1 -> 0, 0 -> 255
    assert read_label_classes(path, {2: 5}, False)[0] == [5, 0, 1]


@pytest.mark.parametrize('reduce_zero_label', [False, True])
@pytest.mark.parametrize('label_map', [None, {2: 0, 3: 1, 0: 255}, {1: 255, 2: 0, 3: 1, 255: 2}])
def test_label_options_as_mmsegmentation_loads_the_map(tmp_path, reduce_zero_label, label_map):
    """Both options together (ADE20K with a class subset): the zero label is reduced first,
    then the label map applied, in 8 bits, exactly as MMSegmentation's LoadAnnotations does."""
    from mmseg.datasets.transforms import LoadAnnotations
    array = np.array([[0, 1, 2, 2, 3, 3, 3, 4], [4, 4, 4, 4, 255, 255, 7, 0]])
    path = write_maps(str(tmp_path), [array])[0]
    loaded = LoadAnnotations()(dict(seg_map_path=path, reduce_zero_label=reduce_zero_label, label_map=label_map,
                                    seg_fields=[]))['gt_seg_map']
    expected_classes, expected_counts = np.unique(loaded, return_counts=True)
    classes, counts = read_label_classes(path, label_map, reduce_zero_label)
    assert sorted(zip(classes, counts)) == list(zip(expected_classes.tolist(), expected_counts.tolist()))


def test_cache_is_reused(maps_dataset, tmp_path, monkeypatch):
    cache = str(tmp_path / 'cache')
    first = dataset_class_index(maps_dataset, cache_dir=cache).class_sets
    assert len(os.listdir(cache)) == 1

    def fail(*args, **kwargs):
        raise AssertionError('label maps were read again')

    monkeypatch.setattr(class_index, 'read_label_classes', fail)
    again = dataset_class_index(maps_dataset, cache_dir=cache).class_sets
    assert [a.tolist() for a in again] == [f.tolist() for f in first]


def test_changed_label_map_is_rescanned(maps_dataset, tmp_path):
    cache = str(tmp_path / 'cache')
    dataset_class_index(maps_dataset, cache_dir=cache)
    write_maps(os.path.dirname(maps_dataset.paths[0]), [np.array([[3, 3, 3], [3, 3, 3]])])
    os.utime(maps_dataset.paths[0], ns=(1, 1))
    assert dataset_class_index(maps_dataset, cache_dir=cache).class_sets[0].tolist() == [3]
    assert len(os.listdir(cache)) == 2


def test_corrupt_cache_is_rebuilt(maps_dataset, tmp_path):
    cache = tmp_path / 'cache'
    dataset_class_index(maps_dataset, cache_dir=str(cache))
    (path,) = list(cache.iterdir())
    path.write_text('{not json')
    assert dataset_class_index(maps_dataset, cache_dir=str(cache)).class_sets[1].tolist() == [2, 3]
    assert json.loads(path.read_text())['num_images'] == 3


@pytest.mark.parametrize('edit', ['fingerprint', 'counts'])
def test_cache_not_matching_the_dataset_is_rebuilt(maps_dataset, tmp_path, edit):
    """A cache file whose fingerprint, or number of entries, is not this dataset's (an edited
    file: its name holds the fingerprint) is scanned again and rewritten, with a warning."""
    cache = tmp_path / 'cache'
    dataset_class_index(maps_dataset, cache_dir=str(cache))
    (path,) = list(cache.iterdir())
    payload = json.loads(path.read_text())
    if edit == 'fingerprint':
        payload['fingerprint'] = 'f' * 64
    else:
        payload['counts'] = payload['counts'][:-1]
    path.write_text(json.dumps(payload))
    assert dataset_class_index(maps_dataset, cache_dir=str(cache)).class_sets[1].tolist() == [2, 3]
    rewritten = json.loads(path.read_text())
    assert len(rewritten['counts']) == 3 and rewritten['fingerprint'] != 'f' * 64


def test_cache_file_is_readable_by_the_other_users_of_a_shared_cache_dir(maps_dataset, tmp_path):
    previous = os.umask(0o022)
    try:
        dataset_class_index(maps_dataset, cache_dir=str(tmp_path / 'cache'))
    finally:
        os.umask(previous)
    (path,) = list((tmp_path / 'cache').iterdir())
    assert path.stat().st_mode & 0o777 == 0o644


def test_unwritable_cache_dir_warns_and_continues(maps_dataset, tmp_path):
    blocker = tmp_path / 'not_a_dir'
    blocker.write_text('')
    sets = dataset_class_index(maps_dataset, cache_dir=str(blocker / 'cache')).class_sets
    assert sets[1].tolist() == [2, 3]


def test_unreadable_label_map_names_the_file(maps_dataset, tmp_path):
    shutil.copy(__file__, maps_dataset.paths[1])  # not an image
    with pytest.raises(OSError, match=r'1\.png'):
        dataset_class_index(maps_dataset, cache_dir=None)


@pytest.fixture
def backend_args_read(monkeypatch):
    """The ``backend_args`` of every file MMEngine's ``fileio.get`` reads, in order."""
    from mmengine import fileio
    seen = []
    read = fileio.get

    def get(path, backend_args=None):
        seen.append(backend_args)
        return read(path)

    monkeypatch.setattr(fileio, 'get', get)
    return seen


def test_label_maps_are_read_with_the_datasets_backend_args(maps_dataset, backend_args_read):
    """Label maps on an object store (petrel, ceph with ``path_mapping``) are read the way the
    dataset's own ``LoadAnnotations`` reads them: with its ``backend_args``."""
    seen = backend_args_read
    maps_dataset.backend_args = dict(backend='local', marker='dataset')
    index = dataset_class_index(maps_dataset, cache_dir=None)
    assert seen == [maps_dataset.backend_args] * 3
    assert [s.tolist() for s in index.class_sets] == [[1], [2, 3], []]
    seen.clear()
    dataset_class_index(maps_dataset, cache_dir=None, backend_args=dict(backend='local', marker='given'))
    assert seen == [dict(backend='local', marker='given')] * 3  # given ones win


def test_detection_instances_skip_ignored_boxes():
    class Det:
        metainfo = dict(classes=('a', 'b', 'c'))

        def __len__(self):
            return 2

        def get_data_info(self, index):
            return [dict(instances=[dict(bbox_label=2, ignore_flag=0), dict(bbox_label=1, ignore_flag=1),
                                    dict(bbox_label=2, ignore_flag=0), dict(bbox_label=0, ignore_flag=0)]),
                    dict(instances=[])][index]

    assert [s.tolist() for s in dataset_class_index(Det()).class_sets] == [[2, 0], []]


def test_detection_class_ids_are_never_the_ignore_index():
    """255 is an ordinary class of a detection dataset with more classes (LVIS, Objects365)."""
    class ManyClasses:
        metainfo = dict(classes=tuple(f'c{i}' for i in range(300)))

        def __len__(self):
            return 2

        def get_data_info(self, index):
            return dict(instances=[dict(bbox_label=255, ignore_flag=0), dict(bbox_label=3 + index, ignore_flag=0),
                                   dict(bbox_label=255, ignore_flag=0)])

    assert [s.tolist() for s in dataset_class_index(ManyClasses()).class_sets] == [[255, 3], [255, 4]]


class MapsDataset(BaseDataset):
    """A real MMEngine dataset of label maps, for the dataset wrappers."""

    METAINFO = dict(classes=('background', 'cat', 'dog', 'bird'))

    def __init__(self, paths):
        self.paths = paths
        super().__init__(serialize_data=False)

    def load_data_list(self):
        return [dict(img_path=path[:-len('.png')] + '.jpg', seg_map_path=path, reduce_zero_label=False,
                     label_map=None) for path in self.paths]

    def get_cat_ids(self, index):  # ClassBalancedDataset's input
        return read_label_classes(self.paths[index], None, False)[0]


@pytest.mark.parametrize('wrap', ['repeat', 'class_balanced', 'concat'])
def test_dataset_wrappers_read_each_map_once(maps_dataset, tmp_path, monkeypatch, wrap):
    """A wrapper's index i has the classes of the entry its get_data_info(i) reads; each
    label map is read once, however often the wrapper repeats it; indices share an image
    id exactly when they read one image."""
    inner = MapsDataset(maps_dataset.paths)
    dataset = dict(repeat=lambda: RepeatDataset(inner, times=500),
                   class_balanced=lambda: ClassBalancedDataset(inner, oversample_thr=0.9),
                   concat=lambda: ConcatDataset([inner, MapsDataset(maps_dataset.paths[::-1])]))[wrap]()
    reads = []

    def counted(path, *args):
        reads.append(path)
        return read_label_classes(path, *args)

    monkeypatch.setattr(class_index, 'read_label_classes', counted)
    index = dataset_class_index(dataset, cache_dir=str(tmp_path / 'cache'))
    sets = index.class_sets
    assert len(sets) == len(dataset) > len(maps_dataset.paths)
    images = [dataset.get_data_info(i)['img_path'] for i in range(len(dataset))]
    same_partition = set(zip(index.image_ids.tolist(), images))
    assert len(same_partition) == len(set(images)) == len(set(index.image_ids.tolist())) == len(maps_dataset.paths)
    by_path = {path: classes for path, classes in zip(maps_dataset.paths, [[1], [2, 3], []])}
    assert [s.tolist() for s in sets] == [by_path[dataset.get_data_info(i)['seg_map_path']]
                                          for i in range(len(dataset))]
    distinct = len(maps_dataset.paths) * (2 if wrap == 'concat' else 1)
    assert len(reads) == distinct and sorted(set(reads)) == sorted(maps_dataset.paths)


def test_multi_image_mix_dataset_is_read_through_with_its_datasets_backend_args(maps_dataset, backend_args_read):
    """MMSegmentation's (and MMDetection's) ``MultiImageMixDataset``: index for index the
    dataset it wraps, whose ``backend_args`` read the maps (they were lost: ``None``)."""
    from mmseg.datasets import MultiImageMixDataset
    seen = backend_args_read
    inner = MapsDataset(maps_dataset.paths)
    inner.backend_args = dict(backend='local', marker='dataset')
    mixed = MultiImageMixDataset(ConcatDataset([inner]), pipeline=[])
    index = dataset_class_index(mixed, cache_dir=None)
    assert seen == [inner.backend_args] * 3
    assert [s.tolist() for s in index.class_sets] == [[1], [2, 3], []]


def test_joined_datasets_of_other_metainfo_pair_when_their_classes_agree(maps_dataset):
    """MMDetection's ``ConcatDataset`` keeps a list of metainfos when they differ (VOC2007 and
    VOC2012 without ``ignore_keys``): the same classes pair; other classes name the key."""
    from mmdet.datasets import ConcatDataset as DetConcatDataset

    def part(paths, **metainfo):
        dataset = MapsDataset(paths)
        dataset._metainfo = dict(dataset.metainfo, **metainfo)
        return dataset
    joined = DetConcatDataset([part(maps_dataset.paths, dataset_type='VOC2007'),
                               part(maps_dataset.paths, dataset_type='VOC2012')])
    assert isinstance(joined.metainfo, list)
    sets = dataset_class_index(joined, cache_dir=None).class_sets
    assert [s.tolist() for s in sets] == [[1], [2, 3], []] * 2  # class 0, 'background', excluded in both
    other = DetConcatDataset([part(maps_dataset.paths),
                              part(maps_dataset.paths, classes=('cat', 'dog', 'bird', 'fox'))])
    with pytest.raises(ValueError, match=r"metainfo classes differ \(\['background', 'cat'.*metainfo=dict\(classes"):
        dataset_class_index(other, cache_dir=None)


def test_dataset_without_labels_is_rejected():
    class Plain:
        def __len__(self):
            return 1

        def get_data_info(self, index):
            return dict(img_path='x.jpg')

    with pytest.raises(ValueError, match=r"seg_map_path.*keys present: \['img_path'\]"):
        dataset_class_index(Plain())


def test_the_index_does_not_hold_the_annotations_it_has_read():
    """Each data info's annotations go once its classes are read: a large detection dataset's
    infos, all held at once on rank 0, were gigabytes (COCO-like: 1.3 GB)."""
    import tracemalloc

    class LargeAnnotations:
        metainfo = dict(classes=('a', 'b', 'c'))

        def __len__(self):
            return 300

        def get_data_info(self, index):  # a fresh copy every call, as MMEngine's unpickling gives
            polygon = [float(v) for v in range(4000)]  # about 130 KB of Python floats
            return dict(img_path=f'{index}.jpg', instances=[dict(bbox_label=index % 3, ignore_flag=0, mask=[polygon])])

    dataset = LargeAnnotations()
    one_info = 4000 * 32  # a float object and its list slot
    tracemalloc.start()
    try:
        sets = dataset_class_index(dataset, cache_dir='').class_sets
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [s.tolist() for s in sets[:4]] == [[0], [1], [2], [0]]
    assert peak < 10 * one_info  # all 300 infos held at once: 300 x one_info (38 MB)


def _index_on_rank(rank, store, datasets, cache_dir, results):
    """One of two gloo processes: the class index of each dataset, and the maps this rank read."""
    from datetime import timedelta

    import torch.distributed as dist
    dist.init_process_group('gloo', init_method=f'file://{store}', rank=rank, world_size=2,
                            timeout=timedelta(seconds=30))  # a rank left waiting fails the test, not hangs it
    reads = []

    def counted(path, *args):
        reads.append(path)
        return read_label_classes(path, *args)

    class_index.read_label_classes = counted
    outcome = []
    for dataset in datasets:
        reads.clear()
        try:
            sets = [s.tolist() for s in dataset_class_index(dataset, cache_dir=cache_dir).class_sets]
            outcome.append(dict(sets=sets, reads=list(reads)))
        except OSError as error:
            outcome.append(dict(error=str(error), reads=list(reads)))
    with open(os.path.join(results, f'{rank}.json'), 'w') as file:
        json.dump(outcome, file)
    dist.destroy_process_group()


class UnreadableOnRankOne(LabelMapDataset):
    """A dataset whose annotation file only rank 0's node can open (it is read lazily)."""

    def get_data_info(self, index):
        import torch.distributed as dist
        if dist.get_rank() == 1:
            raise FileNotFoundError('rank 1 cannot open the annotation file')
        return super().get_data_info(index)


@pytest.mark.timeout(120)
def test_ranks_read_a_share_of_the_label_maps_each(tmp_path):
    """Under distributed training the first scan is shared: each rank reads every other map and
    both get the whole index; rank 0 caches it, and the next run reads nothing. A map no rank
    can read, or a dataset one rank cannot list, fails every rank (none waits for ever), naming
    the file."""
    import torch.multiprocessing as mp
    maps = [np.full((2, 3), label) for label in (1, 2, 3, 1, 0)]
    (tmp_path / 'maps').mkdir()
    dataset = LabelMapDataset(write_maps(str(tmp_path / 'maps'), maps))
    broken = LabelMapDataset(dataset.paths[:3] + [str(tmp_path / 'missing.png')])
    lazy = UnreadableOnRankOne(dataset.paths[:2])
    results = tmp_path / 'results'
    results.mkdir()
    mp.spawn(_index_on_rank, args=(str(tmp_path / 'store'), [dataset, dataset, broken, lazy],
                                   str(tmp_path / 'cache'), str(results)), nprocs=2)
    outcome = [json.load(open(results / f'{rank}.json')) for rank in (0, 1)]
    expected = [[1], [2], [3], [1], []]
    for rank in (0, 1):
        first, second, failed, failed_on_one_rank = outcome[rank]
        assert first == dict(sets=expected, reads=dataset.paths[rank::2])
        assert second == dict(sets=expected, reads=[])  # the cache rank 0 wrote
        assert 'missing.png' in failed['error']
        assert 'rank 1 cannot open the annotation file' in failed_on_one_rank['error']
    assert len(os.listdir(tmp_path / 'cache')) == 1


def test_entries_naming_one_image_by_different_spellings_share_its_id():
    infos = [dict(img_path='./data/a.jpg'), dict(img_path='data/a.jpg'), dict(img_path='data//b.jpg'),
             dict(img_path='data/b.jpg'), dict(), dict()]
    assert class_index._entry_images(infos).tolist() == [0, 0, 1, 1, 2, 3]  # no path: each its own


def test_the_class_index_says_which_label_values_are_no_class(tmp_path):
    (tmp_path / 'maps').mkdir()
    dataset = LabelMapDataset(write_maps(str(tmp_path / 'maps'), [[[0, 1], [2, 255]], [[0, 1], [3, 3]]]))
    assert dataset_class_index(dataset, ignore_index=255).excluded == {0, 255}  # 'background', ignore
    dataset.paths = dataset.paths[1:]
    assert dataset_class_index(dataset, ignore_index=0, background_classes=None).excluded == {0}


def test_a_label_value_that_is_no_class_and_not_ignored_is_named_with_its_file(tmp_path):
    """Value 7 with four classes would make the cross-entropy fail mid-training, naming no file."""
    (tmp_path / 'maps').mkdir()
    dataset = LabelMapDataset(write_maps(str(tmp_path / 'maps'), [[[0, 1], [2, 255]], [[7, 1], [4, 255]]]))
    with pytest.raises(ValueError, match=r'1 label maps .*4 classes.*1\.png: \[4, 7\].*ignore_index'):
        dataset_class_index(dataset, cache_dir=None)
    assert dataset_class_index(LabelMapDataset(dataset.paths[:1]), cache_dir=None).class_sets[0].tolist() == [1, 2]


@pytest.mark.parametrize('background, expected', [
    ('auto', [0]), (None, []), (2, [2]), ('dog', [2]), (['dog', 0], [2, 0]), ((3,), [3])])
def test_background_classes_take_ids_or_names(background, expected):
    assert class_index.background_class_ids(('background', 'cat', 'dog', 'bird'), background) == expected


@pytest.mark.parametrize('name', ['bg', '_background_', '__background__', 'Background'])
def test_auto_background_knows_the_usual_spellings(name):
    assert class_index.background_class_ids((name, 'cat'), 'auto') == [0]


@pytest.mark.parametrize('background, message', [
    ('cow', "'cow' is not a class of the dataset"), (1.5, 'must be'), ([0, -1], 'must be'), ([True], 'must be')])
def test_bad_background_classes_name_the_key(background, message):
    with pytest.raises(ValueError, match=f'train_dataloader.sampler.background_classes.*{message}|'
                                         f'{message}.*train_dataloader.sampler.background_classes'):
        class_index.background_class_ids(('background', 'cat'), background)


def test_the_index_logs_what_never_pairs_and_warns_when_nothing_can(maps_dataset, monkeypatch):
    messages = []
    monkeypatch.setattr(class_index, 'print_log', lambda message, **kwargs: messages.append(message))
    dataset_class_index(maps_dataset, cache_dir=None)
    assert any('never make a pair' in m and '0 (background), 255' in m for m in messages)
    assert not any('every pair is random' in m for m in messages)
    messages.clear()
    dataset_class_index(maps_dataset, source='instances', cache_dir=None)  # label maps read as detection
    assert any('every pair is random' in m and "class_source='instances'" in m for m in messages)


def test_an_object_whose_mask_loading_ignores_makes_no_class_where_masks_are_loaded():
    """MMDetection's LoadAnnotations(with_mask=True) ignores an object whose polygons all have
    fewer than three points; boxes-only pipelines keep it."""
    from mmcv.transforms import Compose

    class Det:
        metainfo = dict(classes=('a', 'b', 'c', 'd', 'e'))

        def __init__(self, with_mask, poly2mask=True):
            self.pipeline = Compose([dict(type='mmdet.LoadAnnotations', with_bbox=True, with_mask=with_mask,
                                          poly2mask=poly2mask)])

        def __len__(self):
            return 1

        def get_data_info(self, index):
            return dict(img_path='x.jpg', instances=[
                dict(bbox_label=1, ignore_flag=0, mask=[[0, 0, 4, 4]]),  # two points
                dict(bbox_label=2, ignore_flag=0, mask=[[0, 0, 4, 0, 4, 4]]),
                dict(bbox_label=0, ignore_flag=0, mask=dict(size=[4, 4])),  # RLE without counts
                dict(bbox_label=3, ignore_flag=0, mask=dict(size=[4, 4], counts=b'0')),  # counts as bytes
                dict(bbox_label=4, ignore_flag=0, mask=dict(size=[4, 4], counts='04')),
            ])

    assert sorted(dataset_class_index(Det(with_mask=True)).class_sets[0].tolist()) == [2, 4]
    assert dataset_class_index(Det(with_mask=True, poly2mask=False)).class_sets[0].tolist() == [2]  # polygons only
    assert sorted(dataset_class_index(Det(with_mask=False)).class_sets[0].tolist()) == [0, 1, 2, 3, 4]


@pytest.mark.parametrize('change', ['label_map', 'reduce_zero_label', 'size'])
def test_a_cache_is_not_reused_when_what_the_maps_mean_changed(tmp_path, change):
    """The fingerprint holds each map's size and the dataset's label_map and reduce_zero_label,
    not only the modification times."""
    (tmp_path / 'maps').mkdir()
    dataset = LabelMapDataset(write_maps(str(tmp_path / 'maps'), [[[1, 1, 2]]]))
    cache = str(tmp_path / 'cache')
    assert dataset_class_index(dataset, cache_dir=cache).class_sets[0].tolist() == [1, 2]
    if change == 'label_map':
        dataset.label_map, expected = {1: 3}, [3, 2]
    elif change == 'reduce_zero_label':
        dataset.reduce_zero_label, expected = True, [1]  # 1 -> 0 (background), 2 -> 1
    else:
        stamp = os.stat(dataset.paths[0]).st_mtime_ns
        write_maps(str(tmp_path / 'maps'), [[[3, 3, 3, 3]]])
        os.utime(dataset.paths[0], ns=(stamp, stamp))
        expected = [3]
    assert dataset_class_index(dataset, cache_dir=cache).class_sets[0].tolist() == expected


def test_a_cache_another_reading_rule_wrote_is_not_reused(tmp_path, monkeypatch):
    """The reading rule (read_label_classes' source) is in the fingerprint: a cache an earlier
    version wrote (before commit 43fa954 the zero label was reduced after the label map) is
    scanned again, not read as if current."""
    (tmp_path / 'maps').mkdir()
    dataset = LabelMapDataset(write_maps(str(tmp_path / 'maps'), [[[1, 1, 2]]]))
    cache = str(tmp_path / 'cache')
    assert 'seg[seg == 0] = 255' in class_index.READING_RULE
    monkeypatch.setattr(class_index, 'READING_RULE', 'an earlier rule')
    monkeypatch.setattr(class_index, 'read_label_classes', lambda *args, **kwargs: ([3], [3]))
    assert dataset_class_index(dataset, cache_dir=cache).class_sets[0].tolist() == [3]
    monkeypatch.undo()
    assert dataset_class_index(dataset, cache_dir=cache).class_sets[0].tolist() == [1, 2]
    assert len(os.listdir(cache)) == 2


def test_detection_infos_with_a_seg_map_path_are_read_from_their_instances():
    """MMDetection's COCO infos carry a seg_map_path for panoptic use; the boxes say the classes."""
    class Det:
        metainfo = dict(classes=('a', 'b'))

        def __len__(self):
            return 1

        def get_data_info(self, index):
            return dict(img_path='x.jpg', seg_map_path='missing.png',
                        instances=[dict(bbox_label=1, ignore_flag=0), dict(bbox_label=-1, ignore_flag=0)])

    assert dataset_class_index(Det()).class_sets[0].tolist() == [1]  # and a negative label is no class


def test_label_map_classes_do_not_read_the_annotations_of_the_infos(tmp_path):
    """``class_source='seg_map'`` on infos that also carry instances (COCO panoptic-like):
    their annotations are not read (here they lack the ``bbox_label`` detection needs)."""
    (tmp_path / 'maps').mkdir()
    paths = write_maps(str(tmp_path / 'maps'), [[[1, 1], [2, 255]], [[3, 3], [0, 0]]])

    class MapsWithInstances(LabelMapDataset):
        def get_data_info(self, index):
            return dict(super().get_data_info(index), instances=[dict(segments=1)])

    sets = dataset_class_index(MapsWithInstances(paths), source='seg_map', cache_dir=None).class_sets
    assert [s.tolist() for s in sets] == [[1, 2], [3]]
