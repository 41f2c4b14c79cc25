"""The main job on generated data: ``make demo``.

1. Writes a small generated dataset in the Pascal VOC 2012 + aug layout under
   ``data/ipswap_demo/VOCdevkit/VOC2012`` (never over real data).
2. Trains ``configs/ipswap_deeplabv3_voc.py`` on it on the CPU for a short schedule
   (``shrink_seg_config``: crop size and iterations, plus what a CPU machine with no
   internet needs: ``data_root`` of the generated data, no pretrained download, 0 workers).
3. Evaluates mIoU on the generated val split and prints it.
4. Saves a picture of swapped pairs with their label maps side by side.
"""
import argparse
import copy
import os
import os.path as osp
import sys

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)

from mmengine.config import Config  # noqa: E402
from mmengine.runner import Runner  # noqa: E402

import ipswap_mm  # noqa: E402,F401
from ipswap_mm.synthetic import write_voc_dataset  # noqa: E402
from ipswap_mm.synthetic.small_run import shrink_seg_config  # noqa: E402
from ipswap_mm.synthetic.voc import voc_palette  # noqa: E402
from ipswap_mm.visualization import save_seg_pairs_figure  # noqa: E402


def save_swap_picture(runner: Runner, path: str) -> str:
    """Run one training batch through the preprocessor, without and with the swap."""
    model = runner.model
    preprocessor = model.data_preprocessor
    batch = next(iter(runner.train_dataloader))
    augments, preprocessor.batch_augments = preprocessor.batch_augments, None
    plain = preprocessor(copy.deepcopy(batch), training=True)
    preprocessor.batch_augments = augments
    swap = augments.augments[0]
    swap.swap.swap_prob = 1.0  # show a swap in every pair
    before = plain['inputs'].clone()
    before_labels = [s.gt_sem_seg.data.clone() for s in plain['data_samples']]
    after, samples = swap(plain['inputs'], plain['data_samples'])
    import torch
    return save_seg_pairs_figure(path, before, torch.stack(before_labels), after,
                                 torch.stack([s.gt_sem_seg.data for s in samples]),
                                 preprocessor.mean.flatten().tolist(), preprocessor.std.flatten().tolist(),
                                 voc_palette())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--config', default=osp.join(ROOT, 'configs/ipswap_deeplabv3_voc.py'))
    parser.add_argument('--data-root', default='data/ipswap_demo/VOCdevkit/VOC2012')
    parser.add_argument('--work-dir', default='work_dirs/demo_ipswap_deeplabv3_voc')
    parser.add_argument('--crop', type=int, default=128)
    parser.add_argument('--iters', type=int, default=40)
    args = parser.parse_args()

    if not osp.exists(osp.join(args.data_root, 'ImageSets/Segmentation/val.txt')):
        write_voc_dataset(args.data_root)
        print(f'Generated a small VOC-layout dataset in {args.data_root}')
    cfg = shrink_seg_config(Config.fromfile(args.config), args.data_root, args.crop, args.iters, args.work_dir)
    runner = Runner.from_cfg(cfg)
    runner.train()
    metrics = runner.test()
    os.makedirs(args.work_dir, exist_ok=True)
    picture = save_swap_picture(runner, osp.join(args.work_dir, 'swapped_pairs.png'))
    print(f'mIoU on the generated val split after {args.iters} iterations: {metrics["mIoU"]:.2f}')
    print(f'Swapped pairs with their label maps: {picture}')


if __name__ == '__main__':
    main()
