"""The main job on generated data: ``make demo``.

Segmentation (``--tasks seg``):

1. Writes a small generated dataset in the Pascal VOC 2012 + aug layout under
   ``data/ipswap_demo/VOCdevkit/VOC2012`` (never over real data).
2. Trains ``configs/ipswap_deeplabv3_voc.py`` on it on the CPU for a short schedule
   (``shrink_seg_config``: crop size and iterations, plus what a CPU machine with no
   internet needs: ``data_root`` of the generated data, no pretrained download, 0 workers),
   with ``randomness.seed`` from ``--seed`` (0), so that a run repeats on the same machine.
3. Evaluates mIoU on the generated val split and prints it.
4. Saves a picture of swapped pairs with their label maps side by side.

Detection (``--tasks det``):

1. Writes a small generated dataset in the COCO 2017 layout (boxes and polygon masks)
   under ``data/ipswap_demo/coco`` (never over real data).
2. Trains ``configs/ipswap_mask-rcnn_r50_fpn_1x_coco.py`` on it on the CPU for a short
   schedule (``shrink_det_config``: image scale and epochs, plus ``data_root``, no
   pretrained download, 0 workers).
3. Evaluates bbox and segm mAP with the stock ``CocoMetric`` on the generated val split
   and prints them.
4. Saves a picture of swapped pairs with their boxes and instance masks drawn.

Both tasks run by default (``--tasks seg,det``). The numbers check that the pipeline
trains and evaluates end to end, not that IPS helps: the schedules are a few dozen
iterations from scratch.
"""
from __future__ import annotations

import argparse
import copy
import os.path as osp
import sys
from dataclasses import dataclass
from typing import Dict, Iterable, List, Tuple

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)

import torch  # noqa: E402
from mmengine.config import Config  # noqa: E402
from mmengine.runner import Runner  # noqa: E402
from torch import Tensor  # noqa: E402

import ipswap_mm  # noqa: E402,F401
from ipswap_mm.models.pair_swap_batch_aug import swaps_of  # noqa: E402
from ipswap_mm.synthetic import write_coco_dataset, write_voc_dataset  # noqa: E402
from ipswap_mm.synthetic.small_run import shrink_det_config, shrink_seg_config  # noqa: E402
from ipswap_mm.synthetic.voc import voc_palette  # noqa: E402
from ipswap_mm.visualization import save_det_pairs_figure, save_seg_pairs_figure  # noqa: E402

TASKS = ('seg', 'det')
NUM_PAIRS = 3  # pairs (rows) in each picture
DET_IMAGE_SIZE = (96, 128)  # (h, w) of the generated detection images
DET_NUM_VAL = 8  # generated detection val images


@dataclass
class SwappedBatch:
    """Training pairs after the data preprocessor, before and after the swap."""

    before_inputs: Tensor  # (2P, 3, H, W), normalised
    before_samples: list
    after_inputs: Tensor
    after_samples: list
    mean: List[float]
    std: List[float]


def first_pairs(loader: Iterable[dict], num_pairs: int) -> dict:
    """The first ``num_pairs`` pairs of a pair-by-pair loader, merged into one unprocessed batch."""
    inputs: list = []
    samples: list = []
    for batch in loader:
        inputs += list(batch['inputs'])
        samples += list(batch['data_samples'])
        if len(samples) >= 2 * num_pairs:
            break
    return dict(inputs=inputs[:2 * num_pairs], data_samples=samples[:2 * num_pairs])


def swap_training_pairs(runner: Runner, num_pairs: int = NUM_PAIRS) -> SwappedBatch:
    """Run training pairs through the data preprocessor with the swap turned off, then swap them
    with ``swap_prob=1.0`` (every pair shows a swap). The model's settings are restored."""
    preprocessor = runner.model.data_preprocessor
    batch = first_pairs(runner.train_dataloader, num_pairs)
    augments = preprocessor.batch_augments
    swaps = swaps_of(runner.model)
    if not swaps:
        raise ValueError('model.data_preprocessor.batch_augments holds no SegPatchSwap / DetPatchSwap')
    swap = swaps[0]
    preprocessor.batch_augments = None
    try:
        plain = preprocessor(batch, training=True)
    finally:
        preprocessor.batch_augments = augments
    # the swap returns a new batch but replaces the samples' annotations, hence the copy of the samples
    before_inputs, before_samples = plain['inputs'], copy.deepcopy(plain['data_samples'])
    swap_prob, swap.patch_swap.swap_prob = swap.patch_swap.swap_prob, 1.0
    swap.pair_loss_attached = True  # a picture after training with the hook: no pair loss missing
    try:
        after_inputs, after_samples = swap(plain['inputs'], plain['data_samples'])
    finally:
        swap.patch_swap.swap_prob = swap_prob
    return SwappedBatch(before_inputs, before_samples, after_inputs, after_samples,
                        preprocessor.mean.flatten().tolist(), preprocessor.std.flatten().tolist())


def train_and_test(cfg: Config, seed: int) -> Tuple[Runner, Dict[str, float]]:
    """Train ``cfg`` with ``randomness.seed`` set to ``seed`` and evaluate it with its test loop:
    ``(runner, metrics)``."""
    cfg.randomness = dict(seed=seed)
    runner = Runner.from_cfg(cfg)
    runner.train()
    metrics = runner.test()
    return runner, metrics


def run_seg(args: argparse.Namespace) -> List[str]:
    """Segmentation part; returns the summary lines."""
    if not osp.exists(osp.join(args.seg_data_root, 'ImageSets/Segmentation/val.txt')):
        write_voc_dataset(args.seg_data_root)
        print(f'Generated a small VOC-layout dataset in {args.seg_data_root}')
    cfg = shrink_seg_config(Config.fromfile(args.seg_config), args.seg_data_root, args.crop, args.iters,
                            args.seg_work_dir)
    runner, metrics = train_and_test(cfg, args.seed)
    pairs = swap_training_pairs(runner)

    def label_maps(samples: list) -> Tensor:
        return torch.stack([sample.gt_sem_seg.data for sample in samples])

    picture = save_seg_pairs_figure(osp.join(args.seg_work_dir, 'swapped_pairs.png'), pairs.before_inputs,
                                    label_maps(pairs.before_samples), pairs.after_inputs,
                                    label_maps(pairs.after_samples), pairs.mean, pairs.std, voc_palette(),
                                    num_pairs=NUM_PAIRS)
    return [f'Segmentation: mIoU on the generated val split after {args.iters} iterations: {metrics["mIoU"]:.2f}',
            f'Segmentation: swapped pairs with their label maps: {picture}']


def format_det_metrics(metrics: Dict[str, float]) -> str:
    """``bbox`` and ``segm`` mAP (and AP50) from ``CocoMetric``'s results, in percent."""
    if not metrics:  # CocoMetric returns {} (and logs an error) when no detection passes the score threshold
        return 'no detection scored above the test score threshold: bbox mAP 0.0, segm mAP 0.0'
    parts = []
    for kind in ('bbox', 'segm'):
        parts.append(f'{kind} mAP {100 * metrics[f"coco/{kind}_mAP"]:.1f} '
                     f'(AP50 {100 * metrics[f"coco/{kind}_mAP_50"]:.1f})')
    return ', '.join(parts)


def run_det(args: argparse.Namespace) -> List[str]:
    """Detection part; returns the summary lines."""
    if not osp.exists(osp.join(args.det_data_root, 'annotations/instances_val2017.json')):
        write_coco_dataset(args.det_data_root, num_train=args.det_train_images, num_val=DET_NUM_VAL,
                           size=DET_IMAGE_SIZE)
        print(f'Generated a small COCO-layout dataset in {args.det_data_root}')
    scale = (DET_IMAGE_SIZE[1], DET_IMAGE_SIZE[0])  # (w, h): the images keep their size
    cfg = shrink_det_config(Config.fromfile(args.det_config), args.det_data_root, scale, args.det_epochs,
                            args.det_work_dir)
    runner, metrics = train_and_test(cfg, args.seed)
    pairs = swap_training_pairs(runner)
    picture = save_det_pairs_figure(osp.join(args.det_work_dir, 'swapped_pairs.png'), pairs.before_inputs,
                                    pairs.before_samples, pairs.after_inputs, pairs.after_samples, pairs.mean,
                                    pairs.std, runner.train_dataloader.dataset.metainfo['classes'],
                                    num_pairs=NUM_PAIRS)
    iterations = runner.train_loop.iter
    return [f'Detection: on the generated val split after {iterations} iterations: {format_det_metrics(metrics)}',
            f'Detection: swapped pairs with their boxes and masks: {picture}']


def parse_tasks(text: str) -> List[str]:
    """``'seg,det'`` -> ``['seg', 'det']``, checked."""
    tasks = [task.strip() for task in text.split(',') if task.strip()]
    unknown = sorted(set(tasks) - set(TASKS))
    if unknown or not tasks:
        raise argparse.ArgumentTypeError(f'--tasks takes a comma-separated subset of {",".join(TASKS)}, got {text!r}')
    return tasks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--tasks', type=parse_tasks, default=list(TASKS), help='seg, det or seg,det (default)')
    parser.add_argument('--seed', type=int, default=0,
                        help='randomness.seed of both runs (unset, MMEngine would draw one, and every run would '
                             'print another number)')
    seg = parser.add_argument_group('segmentation')
    seg.add_argument('--seg-config', default=osp.join(ROOT, 'configs/ipswap_deeplabv3_voc.py'))
    seg.add_argument('--seg-data-root', default='data/ipswap_demo/VOCdevkit/VOC2012')
    seg.add_argument('--seg-work-dir', default='work_dirs/demo_ipswap_deeplabv3_voc')
    seg.add_argument('--crop', type=int, default=128, help='segmentation crop size')
    seg.add_argument('--iters', type=int, default=40, help='segmentation training iterations')
    det = parser.add_argument_group('detection')
    det.add_argument('--det-config', default=osp.join(ROOT, 'configs/ipswap_mask-rcnn_r50_fpn_1x_coco.py'))
    det.add_argument('--det-data-root', default='data/ipswap_demo/coco')
    det.add_argument('--det-work-dir', default='work_dirs/demo_ipswap_mask-rcnn_coco')
    det.add_argument('--det-train-images', type=int, default=48,
                     help='generated training images (two per iteration); used when the data is written')
    det.add_argument('--det-epochs', type=int, default=1, help='detection training epochs')
    args = parser.parse_args()

    runs = dict(seg=run_seg, det=run_det)
    summary = [line for task in args.tasks for line in runs[task](args)]
    print('\n'.join(summary))


if __name__ == '__main__':
    main()
