"""What IPS costs per training iteration, next to the alternatives (``make bench``).

For each task the same batch is trained with several variants, each in its own process
(so peak memory is its own): median iteration time (after warm-up) and peak memory,
reported as ratios to the baseline at equal batch size.

Variants:
  baseline    the stock config's model, plain training step
  ips         the project's IPS config: patch swap in the data preprocessor + pair KL hook
  cutmix      (segmentation) a CutMix-style batch augmentation of the same family: one box
              pasted from the flipped batch, labels included (a stand-in for a stock one:
              MMSegmentation 1.2.2 ships none that runs)
  teacher_kd  the baseline step plus a frozen larger teacher's forward pass on the same batch
              (ResNet-101 twin), as a teacher-KD framework runs it; the KL itself is not added,
              so this is a lower bound of its cost
It also times the swap alone against a plain copy of the same batch tensors.

    python tools/benchmark_cost.py [--device cpu|cuda] [--tasks seg] [--iters 10] [--out DIR]
"""
import argparse
import json
import os
import os.path as osp
import statistics
import subprocess
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)

TASKS = {
    'seg': dict(ips='configs/ipswap_deeplabv3_voc.py', baseline='configs/baseline_deeplabv3_voc.py',
                teacher='mmseg::deeplabv3/deeplabv3_r101-d8_4xb4-20k_voc12aug-512x512.py',
                variants=('baseline', 'ips', 'cutmix', 'teacher_kd')),
}


def peak_memory_mb(device: str) -> float:
    import torch
    if device.startswith('cuda'):
        return torch.cuda.max_memory_allocated() / 2**20
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def synchronize(device: str) -> None:
    import torch
    if device.startswith('cuda'):
        torch.cuda.synchronize()


def seg_batch(batch_size: int, crop: int, seed: int = 0):
    """A training batch of generated scenes as the dataloader would give it."""
    import numpy as np
    import torch
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    from ipswap_mm.synthetic import make_scene
    rng = np.random.default_rng(seed)
    inputs, samples = [], []
    for index in range(batch_size):
        classes = (3, 7) if index % 2 == 0 else (3, 11)  # pairs share class 3
        scene = make_scene(rng, crop, crop, classes)
        inputs.append(torch.from_numpy(scene.image[..., ::-1].copy()).permute(2, 0, 1))
        sample = SegDataSample()
        sample.gt_sem_seg = PixelData(data=torch.from_numpy(scene.semantic.astype(np.int64))[None])
        sample.set_metainfo(dict(img_shape=(crop, crop), ori_shape=(crop, crop)))
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def build_seg(config: str, crop: int, device: str):
    from mmengine.config import Config
    from mmengine.hub import get_config
    from mmengine.registry import init_default_scope
    from mmseg.registry import MODELS
    init_default_scope('mmseg')
    cfg = get_config(config) if '::' in config else Config.fromfile(osp.join(ROOT, config))
    cfg.model.pretrained = None
    cfg.model.data_preprocessor.size = (crop, crop)
    cfg.model.backbone.norm_cfg = cfg.model.decode_head.norm_cfg = cfg.model.auxiliary_head.norm_cfg = dict(
        type='BN', requires_grad=True)
    model = MODELS.build(cfg.model).to(device)
    return cfg, model


class SegCutMix:
    """CutMix for segmentation batches: paste one random box from the flipped batch."""

    def __init__(self, ratio: float = 0.5) -> None:
        self.ratio = ratio

    def __call__(self, inputs, data_samples):
        import torch
        height, width = inputs.shape[-2:]
        box_h, box_w = int(height * self.ratio ** 0.5), int(width * self.ratio ** 0.5)
        top = int(torch.randint(0, height - box_h + 1, ()))
        left = int(torch.randint(0, width - box_w + 1, ()))
        labels = torch.stack([s.gt_sem_seg.data for s in data_samples])
        region = (slice(None), slice(None), slice(top, top + box_h), slice(left, left + box_w))
        inputs[region] = inputs.flip(0)[region]
        labels[region] = labels.flip(0)[region]
        for sample, label in zip(data_samples, labels):
            sample.gt_sem_seg.data = label
        return inputs, data_samples


def worker(task: str, variant: str, device: str, iters: int, warmup: int, crop: int, batch: int) -> dict:
    import copy

    import torch
    from mmengine.optim import OptimWrapper

    from ipswap_mm.engine.distill_hook import IPSDistillHook
    spec = TASKS[task]
    torch.manual_seed(0)
    cfg, model = build_seg(spec['ips' if variant == 'ips' else 'baseline'], crop, device)
    if variant == 'ips':
        IPSDistillHook(**{k: v for k, v in cfg.custom_hooks[0].items() if k != 'type'}).attach(model)
    if variant == 'cutmix':
        model.data_preprocessor.batch_augments = SegCutMix()
    teacher = None
    if variant == 'teacher_kd':
        _, teacher = build_seg(spec['teacher'], crop, device)
        teacher.eval().requires_grad_(False)
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9))
    model.train()
    data = seg_batch(batch, crop)
    times = []
    for step in range(warmup + iters):
        batch_data = copy.deepcopy(data)
        synchronize(device)
        start = time.perf_counter()
        if teacher is not None:
            with torch.no_grad():
                teacher_inputs = teacher.data_preprocessor(copy.deepcopy(data), training=False)['inputs']
                teacher._forward(teacher_inputs)
        losses = model.train_step(batch_data, optim)
        synchronize(device)
        if step >= warmup:
            times.append(time.perf_counter() - start)
    result = dict(task=task, variant=variant, median_s=statistics.median(times), times=times,
                  peak_mb=peak_memory_mb(device), losses=sorted(losses))
    if variant == 'ips':
        result.update(swap_vs_copy(model, data, device, iters))
    return result


def swap_vs_copy(model, data, device: str, iters: int) -> dict:
    """Median time of the swap alone vs. a plain copy of the same batch tensors."""
    import copy

    import torch
    processed = model.data_preprocessor(copy.deepcopy(data), training=False)
    inputs = processed['inputs']
    samples = copy.deepcopy(data['data_samples'])
    for sample in samples:
        sample.gt_sem_seg.data = sample.gt_sem_seg.data.to(device)
    swap = model.data_preprocessor.batch_augments.augments[0]
    swap_times, copy_times = [], []
    for _ in range(max(iters, 20)):
        synchronize(device)
        start = time.perf_counter()
        swap(inputs, samples)
        synchronize(device)
        swap_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        inputs.clone()
        torch.stack([s.gt_sem_seg.data for s in samples]).clone()
        synchronize(device)
        copy_times.append(time.perf_counter() - start)
    return dict(swap_s=statistics.median(swap_times), copy_s=statistics.median(copy_times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--device', default=None, help='cpu or cuda (default: cuda if available)')
    parser.add_argument('--tasks', default='seg')
    parser.add_argument('--iters', type=int, default=10)
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument('--rounds', type=int, default=2, help='repeat every variant this many times, interleaved')
    parser.add_argument('--crop', type=int, default=None, help='default: 512 on cuda, 128 on cpu')
    parser.add_argument('--batch', type=int, default=4)
    parser.add_argument('--out', default='work_dirs/benchmark_cost')
    parser.add_argument('--worker', nargs=2, metavar=('TASK', 'VARIANT'), help=argparse.SUPPRESS)
    args = parser.parse_args()
    import torch
    device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    crop = args.crop or (512 if device.startswith('cuda') else 128)
    if args.worker:
        import ipswap_mm  # noqa: F401
        print(json.dumps(worker(*args.worker, device, args.iters, args.warmup, crop, args.batch)))
        return

    results = {}
    for _ in range(args.rounds):
        for task in args.tasks.split(','):
            for variant in TASKS[task]['variants']:
                command = [sys.executable, __file__, '--worker', task, variant, '--device', device,
                           '--iters', str(args.iters), '--warmup', str(args.warmup), '--crop', str(crop),
                           '--batch', str(args.batch)]
                output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
                result = json.loads(output.strip().splitlines()[-1])
                previous = results.setdefault((task, variant), dict(result, times=[], peak_mb=0.0))
                previous['times'] += result['times']
                previous['peak_mb'] = max(previous['peak_mb'], result['peak_mb'])
                for key in ('swap_s', 'copy_s'):
                    if key in result:
                        previous.setdefault(f'{key}_all', []).append(result[key])
    report(results, device, crop, args)


def report(results: dict, device: str, crop: int, args) -> None:
    os.makedirs(args.out, exist_ok=True)
    rows = []
    for (task, variant), result in results.items():
        base = results[(task, 'baseline')]
        median = statistics.median(result['times'])
        row = dict(task=task, variant=variant, median_s=median, peak_mb=result['peak_mb'],
                   time_ratio=median / statistics.median(base['times']),
                   memory_ratio=result['peak_mb'] / base['peak_mb'])
        if 'swap_s_all' in result:
            row['swap_over_copy'] = statistics.median(result['swap_s_all']) / statistics.median(result['copy_s_all'])
        rows.append(row)
    meta = dict(device=device if not device.startswith('cuda') else torch_device_name(), crop=crop,
                batch=args.batch, iters=args.iters, rounds=args.rounds, command=' '.join(sys.argv))
    with open(osp.join(args.out, 'cost.json'), 'w') as file:
        json.dump(dict(meta=meta, rows=rows), file, indent=2)
    print(f"device: {meta['device']}, crop {crop}, batch {args.batch}, {args.iters} iterations x {args.rounds} rounds")
    print(f"{'task':<6} {'variant':<11} {'median s/iter':>13} {'time x':>7} {'peak MB':>9} {'memory x':>9}")
    for row in rows:
        print(f"{row['task']:<6} {row['variant']:<11} {row['median_s']:>13.3f} {row['time_ratio']:>7.3f} "
              f"{row['peak_mb']:>9.0f} {row['memory_ratio']:>9.3f}")
    for row in rows:
        if 'swap_over_copy' in row:
            print(f"{row['task']}: the swap alone costs {row['swap_over_copy']:.2f}x a plain copy of the batch tensors")
    plot(rows, osp.join(args.out, 'cost.png'))


def torch_device_name() -> str:
    import torch
    return torch.cuda.get_device_name()


def plot(rows: list, path: str) -> None:
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    labels = [f"{r['task']}\n{r['variant']}" for r in rows]
    figure, axis = plt.subplots(figsize=(1.4 * len(rows) + 2, 3.2))
    positions = range(len(rows))
    axis.bar([p - 0.2 for p in positions], [r['time_ratio'] for r in rows], 0.4, label='time / baseline')
    axis.bar([p + 0.2 for p in positions], [r['memory_ratio'] for r in rows], 0.4, label='peak memory / baseline')
    axis.axhline(1.05, color='grey', linestyle='--', linewidth=1, label='1.05x')
    axis.set_xticks(list(positions), labels, fontsize=8)
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


if __name__ == '__main__':
    main()
