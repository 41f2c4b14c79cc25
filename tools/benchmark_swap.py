"""The segmentation swap alone against a plain copy of the same batch tensors.

``SegPatchSwap`` (NaN/inf check, cell sampling, images and label maps exchanged; every pair
swaps half its cells) on a random normalised batch with random label maps, against
``clone()`` of the images and of every label map; and the swap without its NaN/inf check (``check_finite=False``), which
is one more read of the images; and the exchange of the images alone (cells given, mask
built), pixel by pixel (``swap_pairs``) and as 64-bit words (``PatchSwap.swap``). Each is
repeated ``--repeats`` times; the fastest repetition is reported (on a shared machine the
fastest is the one least disturbed from outside).

    python tools/benchmark_swap.py [--sizes 128x4,512x4,512x16] [--repeats 40] [--device cpu]

``SIDExBATCH``: square images of SIDE pixels, BATCH images (even).
"""
import argparse
import os.path as osp
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)

from tools.arguments import positive_int  # noqa: E402


def fastest(function, repeats: int, device: str) -> float:
    import torch
    times = []
    for _ in range(repeats):
        if device.startswith('cuda'):
            torch.cuda.synchronize()
        start = time.perf_counter()
        function()
        if device.startswith('cuda'):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return min(times)


def measure(side: int, batch: int, repeats: int, device: str, patch_size: int = 32) -> dict:
    """Fastest swap and fastest copy (seconds) of a ``batch x 3 x side x side`` batch and its label maps."""
    import torch
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    from ipswap_mm.core.patch_swap import swap_pairs
    from ipswap_mm.models.seg import SegPatchSwap
    inputs = torch.randn(batch, 3, side, side, device=device)
    samples = []
    for _ in range(batch):
        sample = SegDataSample()
        sample.gt_sem_seg = PixelData(data=torch.randint(0, 21, (1, side, side), device=device))
        sample.set_metainfo(dict(img_shape=(side, side)))
        samples.append(sample)
    # every pair swaps: a batch in which no pair swaps a cell comes back at once, and the
    # fastest of the repeats would be such a batch
    swap = SegPatchSwap(patch_size=patch_size, swap_prob=1.0, swap_ratio=0.5)
    swap.pair_loss_attached = True  # timed alone, on purpose: no warning about the missing pair loss
    unchecked = SegPatchSwap(patch_size=patch_size, swap_prob=1.0, swap_ratio=0.5, check_finite=False)

    def copy():
        inputs.clone()
        for sample in samples:
            sample.gt_sem_seg.data.clone()

    # the images alone, pixel by pixel and as 64-bit words (PatchSwap.swap), each building its mask
    patch_swap = swap.patch_swap
    cells = patch_swap.sample_cells(batch // 2, side, side, torch.Generator(device).manual_seed(0))
    pixelwise_s = fastest(lambda: swap_pairs(inputs, patch_swap.cells_to_pixels(cells, side, side)), repeats, device)
    words_s = fastest(lambda: patch_swap.swap(inputs, cells), repeats, device)
    swap_s = fastest(lambda: swap(inputs, samples), repeats, device)
    unchecked_s = fastest(lambda: unchecked(inputs, samples), repeats, device)
    copy_s = fastest(copy, repeats, device)
    return dict(side=side, batch=batch, swap_s=swap_s, copy_s=copy_s, swap_over_copy=swap_s / copy_s,
                unchecked_s=unchecked_s, unchecked_over_copy=unchecked_s / copy_s,
                images_pixelwise_s=pixelwise_s, images_words_s=words_s)


def main(argv=None) -> list:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--sizes', default='128x4,512x4,512x16', help='comma-separated SIDExBATCH')
    parser.add_argument('--repeats', type=positive_int, default=40)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--patch-size', type=positive_int, default=32, help='cell side; must divide every SIDE')
    args = parser.parse_args(argv)
    sizes = []
    for item in args.sizes.split(','):
        side, _, batch = item.partition('x')
        if not side.isdigit() or not batch.isdigit() or int(batch) % 2 or int(batch) == 0:
            parser.error(f'--sizes: {item!r} is not SIDExBATCH with an even BATCH')
        if int(side) % args.patch_size:
            parser.error(f'--sizes: {item!r}: --patch-size {args.patch_size} does not divide its side')
        sizes.append((int(side), int(batch)))
    import torch
    print(f'device {args.device}, {torch.get_num_threads()} threads, fastest of {args.repeats}')
    rows = [measure(side, batch, args.repeats, args.device, args.patch_size) for side, batch in sizes]
    for row in rows:
        print(f"{row['side']}x{row['side']} x {row['batch']}: swap {row['swap_s'] * 1e3:.2f} ms, copy "
              f"{row['copy_s'] * 1e3:.2f} ms, swap / copy {row['swap_over_copy']:.2f}; without the NaN/inf check "
              f"{row['unchecked_s'] * 1e3:.2f} ms, {row['unchecked_over_copy']:.2f} copies; the images alone "
              f"{row['images_pixelwise_s'] * 1e3:.2f} ms pixel by pixel, {row['images_words_s'] * 1e3:.2f} ms "
              "as 64-bit words")
    return rows


if __name__ == '__main__':
    main()
