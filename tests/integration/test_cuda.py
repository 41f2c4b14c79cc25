"""The CUDA path: the swap on a GPU batch, and fp16 mixed precision (``--amp``) with the stock tools.

These need a CUDA GPU and are skipped where there is none (CI has none); everything they
exercise also runs on the CPU in the rest of the suite. The README says where they last ran.
"""
import os.path as osp

import mmdet
import mmseg
import pytest
import torch
from mmengine.structures import PixelData
from mmseg.structures import SegDataSample

from ipswap_mm.core.patch_swap import PatchSwap, swap_pairs
from ipswap_mm.models.seg import SegPatchSwap
from tests.integration.helpers import logged_scalars, run_python, small_det_config, small_seg_config

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason='needs a CUDA GPU')


def test_swap_on_the_gpu_equals_the_swap_on_the_cpu():
    generator = torch.Generator().manual_seed(0)
    swap = PatchSwap(patch_size=8, swap_prob=1.0, swap_ratio=(0.2, 0.8))
    cells = swap.sample_cells(3, 40, 48, generator)
    pixel_mask = swap.cells_to_pixels(cells, 40, 48)
    batch = torch.randn(6, 3, 40, 48, generator=generator)
    assert torch.equal(swap_pairs(batch.cuda(), pixel_mask.cuda()).cpu(), swap_pairs(batch, pixel_mask))
    # per-sample maps: stacked and swapped on the GPU, pair by pair on the CPU
    maps = list(batch[:, 0].long())
    assert torch.equal(swap_pairs([m.cuda() for m in maps], pixel_mask.cuda()).cpu(), swap_pairs(maps, pixel_mask))
    # pixels moved in 64-bit words (float32 in twos, uint8 in eights), as the batch augmentations do
    for items in (batch, (batch * 40).to(torch.uint8)):
        assert torch.equal(swap.swap(items.cuda(), cells.cuda()).cpu(), swap_pairs(items, pixel_mask))


def test_seg_swap_of_a_gpu_batch_moves_labels_with_their_pixels():
    batch, side = 8, 64
    labels = torch.randint(0, 21, (batch, 1, side, side), device='cuda')
    inputs = labels.float().expand(batch, 3, side, side).contiguous()  # every pixel shows its label
    samples = []
    for label in labels:
        sample = SegDataSample(gt_sem_seg=PixelData(data=label.clone()))
        sample.set_metainfo(dict(img_shape=(side, side)))
        samples.append(sample)
    swapped, samples = SegPatchSwap(patch_size=16, swap_prob=1.0, swap_ratio=0.5)(inputs, samples)
    swapped_labels = torch.stack([sample.gt_sem_seg.data for sample in samples])
    assert swapped.is_cuda and swapped_labels.is_cuda
    assert torch.equal(swapped[:, :1], swapped_labels.float())
    assert not torch.equal(swapped_labels, labels)  # patches did move
    # a pair exchanges pixels: per position, the pair's two labels are the two it had before
    before, after = labels.view(batch // 2, 2, -1), swapped_labels.view(batch // 2, 2, -1)
    assert torch.equal(after.sort(dim=1).values, before.sort(dim=1).values)


def test_seg_swap_makes_the_same_swaps_on_the_gpu_as_on_the_cpu():
    """The cells are drawn on the host: one seed and iteration, one swap, whatever the device."""
    batch, side = 6, 64
    inputs = torch.randn(batch, 3, side, side)
    outputs = []
    for device in ('cpu', 'cuda'):
        samples, generator = [], torch.Generator().manual_seed(1)  # the same label maps for both devices
        for _ in range(batch):
            labels = torch.randint(0, 21, (1, side, side), generator=generator)
            sample = SegDataSample(gt_sem_seg=PixelData(data=labels))
            sample.set_metainfo(dict(img_shape=(side, side)))
            samples.append(sample.to(device))
        swapped, samples = SegPatchSwap(patch_size=16, swap_prob=0.5, swap_ratio=(0.2, 0.8))(inputs.to(device), samples)
        outputs.append((swapped.cpu(), [sample.gt_sem_seg.data.cpu() for sample in samples]))
    (cpu_images, cpu_labels), (gpu_images, gpu_labels) = outputs
    assert torch.equal(gpu_images, cpu_images)
    assert all(torch.equal(gpu, cpu) for gpu, cpu in zip(gpu_labels, cpu_labels))


def _amp_run(tool: str, config: str, tmp_path) -> tuple:
    """Train ``config`` with ``tool --amp``: (logged loss rows, work dir)."""
    work_dir = str(tmp_path / 'work')
    run_python([tool, config, '--work-dir', work_dir, '--amp'], cwd=str(tmp_path))
    return [row for row in logged_scalars(work_dir) if 'loss' in row], work_dir


def _assert_fp16_ips_run(logged, checkpoint):
    assert logged and all('loss_ips_kl' in row for row in logged)
    assert all(torch.isfinite(torch.tensor([row['loss'], row['loss_ips_kl']])).all() for row in logged)
    assert any(row['loss_ips_kl'] > 0 for row in logged)
    state = torch.load(checkpoint, map_location='cpu', weights_only=True)
    assert 'loss_scaler' in state['optimizer']  # the fp16 AmpOptimWrapper trained this run


def test_fp16_amp_segmentation_with_the_stock_train_tool(voc_root, tmp_path):
    config = small_seg_config('ipswap_deeplabv3_voc.py', voc_root, str(tmp_path / 'work'), str(tmp_path / 'cfg.py'))
    tool = osp.join(osp.dirname(mmseg.__file__), '.mim', 'tools', 'train.py')
    logged, work_dir = _amp_run(tool, config, tmp_path)
    _assert_fp16_ips_run(logged, osp.join(work_dir, 'iter_4.pth'))


@pytest.mark.parametrize('name', ['ipswap_retinanet_r50_fpn_1x_coco.py', 'ipswap_mask-rcnn_r50_fpn_1x_coco.py'])
def test_fp16_amp_detection_with_the_stock_train_tool(name, coco_root, tmp_path):
    config = small_det_config(name, coco_root, str(tmp_path / 'work'), str(tmp_path / 'cfg.py'))
    tool = osp.join(osp.dirname(mmdet.__file__), '.mim', 'tools', 'train.py')
    logged, work_dir = _amp_run(tool, config, tmp_path)
    _assert_fp16_ips_run(logged, osp.join(work_dir, 'epoch_1.pth'))


def test_a_checkpoint_resumed_onto_the_gpu_restores_its_histories(tmp_path):
    """MMEngine's resume loads with ``map_location='cuda'`` where there is a GPU."""
    from mmengine.logging import HistoryBuffer

    from ipswap_mm.engine.checkpoint_safety import make_weights_only_safe, restore_history_buffers
    buffer = HistoryBuffer([0.5, 0.25], [2, 1], max_length=10)
    torch.save(make_weights_only_safe(dict(message_hub=dict(log_scalars={'train/loss': buffer}))), tmp_path / 'c.pth')
    loaded = torch.load(tmp_path / 'c.pth', map_location='cuda', weights_only=True)
    assert loaded['message_hub']['log_scalars']['train/loss']['log'].is_cuda
    restored = restore_history_buffers(loaded)['message_hub']['log_scalars']['train/loss']
    assert restored._log_history.tolist() == [0.5, 0.25] and restored._count_history.tolist() == [2, 1]
