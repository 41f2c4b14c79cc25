"""What IPS costs per training iteration, next to the alternatives (``make bench``).

For one segmentation model, one two-stage and one one-stage detector, the same generated
batch is trained with five variants, each in its own process (so peak memory is its
own): iteration time (after warm-up) and peak memory, reported as ratios to the
baseline at equal batch size. Runs on the CPU, or on a GPU with ``--device cuda``.

Iteration time. Every variant runs ``--rounds`` times, the rounds interleaved across the
variants (each round of a task starting with the next variant, so that none always runs
first), and round r repeats round 1 step by step: the same batch, the same swaps
(drawn per step from a fixed seed). ``time_s`` is the median over the steps of the
fastest round of each step: the fastest round filters out what the machine does to a
process from outside (on a shared 2-core VM the same convolution was seen to take 2.3 to
3.4 s, round to round), while the median over steps keeps what a variant does
differently from step to step (a pair that swaps or not). ``median_s``, the median of
all timed steps, is reported too.

Tasks (``--tasks``, default all three):
  seg         DeepLabV3 R-50-D8 (configs/{baseline,ipswap}_deeplabv3_voc.py)
  two_stage   Mask R-CNN R-50-FPN (configs/{baseline,ipswap}_mask-rcnn_r50_fpn_1x_coco.py)
  one_stage   RetinaNet R-50-FPN (configs/{baseline,ipswap}_retinanet_r50_fpn_1x_coco.py)
Batches are generated scenes (``ipswap_mm.synthetic``), laid out pair by pair, the two
images of a pair sharing a class; detection samples carry boxes and labels (and instance
masks for Mask R-CNN). Backbones are randomly initialised (nothing is downloaded).

Variants:
  baseline    the baseline config's model, plain training step
  ips         the project's IPS config: patch swap in the data preprocessor + pair KL hook
  cutmix      (seg) a CutMix-style batch augmentation of the same family: one box pasted
              from the flipped batch, labels included (a stand-in for a stock one:
              MMSegmentation 1.2.2 ships none that runs)
  copypaste   (two_stage) MMDetection's stock ``CopyPaste`` transform, each image pasting
  mixup       (one_stage) / MMDetection's stock ``MixUp`` transform, each image mixed with
              its partner. These are dataset-pipeline transforms: they run on the CPU, on
              NumPy images, before the samples are packed. Here they run inside the timed
              step, on the main process, so their whole cost is counted in the iteration
              time; in real training they run in the dataloader workers, in parallel with
              the model step, and cost step time only when the workers cannot keep up. The
              loading of the extra image that ``MultiImageMixDataset`` does is not counted.
  teacher_kd  the baseline step plus a frozen teacher's forward pass on the same batch (the
              baseline model with a ResNet-101 backbone, its heads included), as a logit-
              level teacher-KD method runs it; the distillation loss itself is not added
  feature_kd  the same teacher, only its backbone and neck (``extract_feat``), as feature-
              distillation methods (FGD, PKD, CWD on FPN features) run it; no loss added
For detection, every variant packs the samples (``PackDetInputs``) inside the timed step,
so the mixing transforms see pipeline data; segmentation batches come packed.
For the ips variant it also times the swap alone against a plain copy of the same batch
tensors (images, and label maps or boxes, labels and masks).

On the CPU every worker also profiles ``--memory-steps`` untimed steps and reports what
they cost independent of the machine's noise: the tensor memory at the step's peak (what
``max_memory_allocated`` counts on a GPU), the GFLOP the profiler counts, and the operator
calls the host dispatches (roughly a GPU's kernel launches); see ``cpu_step_profile``.

    python tools/benchmark_cost.py [--device cpu|cuda] [--tasks seg,two_stage,one_stage] [--iters 10]
                                   [--rounds 3] [--variants baseline,ips] [--crop SIDE] [--batch 4] [--out DIR]

Writes ``cost.json`` (rows and run settings) and ``cost.png`` to ``--out``, and
``workers.json`` (every worker's raw result) after each worker, so that a run cut short
(a time limit on a lent GPU) keeps what it measured.
"""
import argparse
import copy
import functools
import json
import math
import os
import os.path as osp
import statistics
import subprocess
import sys
import time

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
sys.path.insert(0, ROOT)

from tools.arguments import nonnegative_int, positive_int  # noqa: E402

TEACHER_DEPTH = 101


def peak_memory_mb(device: str) -> float:
    """GPU: ``torch.cuda.max_memory_allocated``. CPU: the process's max RSS (libraries,
    allocator caches and all; see :func:`cpu_step_profile` for the tensors alone)."""
    import torch
    if device.startswith('cuda'):
        return torch.cuda.max_memory_allocated() / 2**20
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# Names of the kernels torch.compile's inductor generates, as the profiler records them (on
# the CPU with ``torch._inductor.config.cpp.enable_kernel_profile``, which the workers set):
# each is one call, where the eager operators it fuses were many
COMPILED_KERNEL_MARKERS = ('cpp_fused_', 'triton_')


def cpu_step_profile(step, modules, optimizer) -> dict:
    """Run one CPU training ``step`` under the profiler; what it costs, independent of the machine's noise.

    ``tensor_peak_mb``: tensor memory at the step's peak, what ``max_memory_allocated``
    counts on a GPU: the parameters and buffers of ``modules`` and the optimizer state,
    live before the step, plus the highest sum of the tensors the step allocates and has
    not yet freed, replayed from the profiler's allocation events in time order.
    ``gflops``: the floating-point work the profiler has formulas for (convolutions,
    matrix products, and of element-wise operations only ``mul`` and ``add``: softmax,
    exp, division, ``where`` and reductions count 0), plus the transposed and backward
    convolutions, which it has none for (:func:`uncounted_convolution_flops`), in GFLOP.
    ``op_calls``: ATen operator calls the host dispatches on the CPU (operators not nested
    in another, and the kernels ``torch.compile`` generated, one call each: see
    :data:`COMPILED_KERNEL_MARKERS`). On a GPU, roughly the kernel launches, with two
    differences: mmcv's compiled ops (RoIAlign, NMS) are not ATen calls and go uncounted,
    and MMDetection's focal loss runs as about 40 ATen calls a level on the CPU where a
    GPU runs mmcv's fused kernel.
    All three are the same for every repetition of a step, unlike its time or the
    process's RSS.
    """
    import itertools

    import torch
    from torch.profiler import ProfilerActivity, profile
    resident = sum(t.numel() * t.element_size()
                   for module in modules for t in itertools.chain(module.parameters(), module.buffers()))
    resident += sum(value.numel() * value.element_size() for state in optimizer.state.values()
                    for value in state.values() if torch.is_tensor(value))
    with profile(activities=[ProfilerActivity.CPU], profile_memory=True, record_shapes=True,
                 with_flops=True) as prof:
        step()
    allocations = sorted((event.start_ns(), event.nbytes()) for event in prof.profiler.kineto_results.events()
                         if event.name() == '[memory]')
    live = peak = 0
    for _, nbytes in allocations:
        live += nbytes
        peak = max(peak, live)
    flops = op_calls = 0
    for event in prof.events():
        compiled = any(marker in event.name for marker in COMPILED_KERNEL_MARKERS)
        if not (compiled or event.name.startswith('aten::')):
            continue
        if not compiled:  # the profiler has no FLOP formula for generated kernels
            flops += event.flops or uncounted_convolution_flops(event)
        parent = event.cpu_parent
        while parent is not None and not parent.name.startswith('aten::'):
            parent = parent.cpu_parent
        op_calls += parent is None
    return dict(tensor_peak_mb=(resident + peak) / 2**20, gflops=flops / 1e9, op_calls=op_calls)


def uncounted_convolution_flops(event) -> int:
    """FLOPs of the convolutions the profiler has no formula for: transposed ones
    (``aten::convolution`` with ``transposed``) and every ``aten::convolution_backward``, where
    each gradient computed (input, weight: ``output_mask``) costs what the forward did.
    0 for any other event (the profiler counts ``aten::conv2d`` itself)."""
    if event.name == 'aten::convolution' and len(event.concrete_inputs) >= 9 and event.concrete_inputs[6]:
        inputs, weight = event.input_shapes[:2]
        return 2 * math.prod(inputs) * math.prod(weight[1:])
    if event.name != 'aten::convolution_backward' or len(event.concrete_inputs) < 11:
        return 0
    grad_output, inputs, weight = event.input_shapes[:3]
    transposed, output_mask = event.concrete_inputs[7], event.concrete_inputs[10]
    forward = 2 * math.prod(inputs if transposed else grad_output) * math.prod(weight[1:])
    return forward * (int(output_mask[0]) + int(output_mask[1]))


def load_config(config: str, options: list = ()):
    """``config`` (relative to the repository) with ``KEY=VALUE`` overrides merged in, as
    ``--cfg-options`` merges them in the stock tools."""
    from mmengine.config import Config, DictAction
    cfg = Config.fromfile(osp.join(ROOT, config))
    for option in options:
        key, _, value = option.partition('=')
        cfg.merge_from_dict({key: DictAction._parse_iterable(value)})
    return cfg


def synchronize(device: str) -> None:
    import torch
    if device.startswith('cuda'):
        torch.cuda.synchronize()


def paired_scenes(batch_size: int, size: int, seed: int = 0) -> list:
    """Generated scenes, pair by pair: both images of a pair show class 3 (and 7 or 11)."""
    import numpy as np

    from ipswap_mm.synthetic import make_scene
    rng = np.random.default_rng(seed)
    scenes = []
    for index in range(batch_size):
        classes = (3, 7) if index % 2 == 0 else (3, 11)
        scene = make_scene(rng, size, size, classes)
        while 3 not in scene.labels:  # the pair must really share its class
            scene = make_scene(rng, size, size, classes)
        scenes.append(scene)
    return scenes


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


class SegTask:
    """A segmentor trained on packed batches; its mixing variant is a batch augmentation."""

    scope = 'mmseg'

    def __init__(self, baseline: str, ips: str, mix: str = 'cutmix') -> None:
        self.baseline, self.ips, self.mix = baseline, ips, mix

    def build(self, config: str, size: int, device: str, depth: int = None, options: list = ()):
        from mmseg.registry import MODELS
        cfg = load_config(config, options)
        cfg.model.pretrained = None
        if depth is not None:
            cfg.model.backbone.depth = depth
        cfg.model.data_preprocessor.size = (size, size)
        cfg.model.backbone.norm_cfg = cfg.model.decode_head.norm_cfg = cfg.model.auxiliary_head.norm_cfg = dict(
            type='BN', requires_grad=True)
        return cfg, MODELS.build(cfg.model).to(device)

    def samples(self, batch_size: int, size: int):
        """The batch as the dataloader gives it: ``dict(inputs, data_samples)``."""
        import numpy as np
        import torch
        from mmengine.structures import PixelData
        from mmseg.structures import SegDataSample
        inputs, samples = [], []
        for index, scene in enumerate(paired_scenes(batch_size, size)):
            inputs.append(torch.from_numpy(scene.image[..., ::-1].copy()).permute(2, 0, 1))
            sample = SegDataSample()
            sample.gt_sem_seg = PixelData(data=torch.from_numpy(scene.semantic.astype(np.int64))[None])
            sample.set_metainfo(dict(img_shape=(size, size), ori_shape=(size, size), img_path=f'synthetic/{index}.png'))
            samples.append(sample)
        return dict(inputs=inputs, data_samples=samples)

    def mixing(self, model, size: int):
        model.data_preprocessor.batch_augments = SegCutMix()  # runs inside train_step
        return None

    def prepare(self, raw, mix):
        return copy.deepcopy(raw)

    def collate(self, prepared, mix):
        return prepared

    def annotations(self, samples) -> list:
        import torch
        return [torch.stack([s.gt_sem_seg.data for s in samples])]


class DetTask:
    """A detector trained on pipeline results packed in the step; its mixing variant is a stock
    MMDetection pipeline transform (``CopyPaste`` or ``MixUp``) with the partner as mix image."""

    scope = 'mmdet'

    def __init__(self, baseline: str, ips: str, mix: str, with_masks: bool) -> None:
        self.baseline, self.ips, self.mix, self.with_masks = baseline, ips, mix, with_masks

    def build(self, config: str, size: int, device: str, depth: int = None, options: list = ()):
        from mmdet.registry import MODELS
        cfg = load_config(config, options)
        cfg.model.backbone.init_cfg = None
        if depth is not None:
            cfg.model.backbone.depth = depth
        return cfg, MODELS.build(cfg.model).to(device)

    def samples(self, batch_size: int, size: int) -> list:
        """Results dicts as the loading transforms leave them (BGR ``img``, boxes, labels, masks)."""
        import numpy as np
        from mmdet.structures.bbox import HorizontalBoxes
        from mmdet.structures.mask import BitmapMasks

        from ipswap_mm.synthetic.scenes import masks_to_pixel_ranges
        results = []
        for index, scene in enumerate(paired_scenes(batch_size, size)):
            boxes = masks_to_pixel_ranges(scene.masks)
            result = dict(img=scene.image[..., ::-1].copy(), img_path=f'synthetic/{index}.jpg', img_id=index,
                          img_shape=(size, size), ori_shape=(size, size), scale_factor=(1.0, 1.0), flip=False,
                          flip_direction=None, gt_bboxes=HorizontalBoxes(np.asarray(boxes, np.float32)),
                          gt_bboxes_labels=scene.labels.astype(np.int64),
                          gt_ignore_flags=np.zeros(len(boxes), bool))
            if self.with_masks:
                result['gt_masks'] = BitmapMasks(scene.masks.astype(np.uint8), size, size)
            results.append(result)
        return results

    def mixing(self, model, size: int):
        from mmdet.datasets.transforms import CopyPaste, MixUp
        return CopyPaste() if self.mix == 'copypaste' else MixUp(img_scale=(size, size))

    def prepare(self, raw: list, mix) -> list:
        """A fresh copy of the results; with a mixing transform, each gets its partner as mix image."""
        prepared = copy.deepcopy(raw)
        if mix is not None:
            for index, result in enumerate(prepared):
                result['mix_results'] = [copy.deepcopy(raw[index ^ 1])]
        return prepared

    def collate(self, prepared: list, mix) -> dict:
        from mmdet.datasets.transforms import PackDetInputs
        pack = PackDetInputs()
        packed = []
        for result in prepared:
            if mix is not None:
                result = mix(result)
                result.pop('mix_results')
            packed.append(pack(result))
        return dict(inputs=[p['inputs'] for p in packed], data_samples=[p['data_samples'] for p in packed])

    def annotations(self, samples) -> list:
        from mmdet.structures.bbox import get_box_tensor
        tensors = []
        for sample in samples:
            instances = sample.gt_instances
            tensors += [get_box_tensor(instances.bboxes), instances.labels]
            if 'masks' in instances:
                tensors.append(instances.masks.masks)
        return tensors


TASKS = {
    'seg': SegTask('configs/baseline_deeplabv3_voc.py', 'configs/ipswap_deeplabv3_voc.py'),
    'two_stage': DetTask('configs/baseline_mask-rcnn_r50_fpn_1x_coco.py', 'configs/ipswap_mask-rcnn_r50_fpn_1x_coco.py',
                         mix='copypaste', with_masks=True),
    'one_stage': DetTask('configs/baseline_retinanet_r50_fpn_1x_coco.py', 'configs/ipswap_retinanet_r50_fpn_1x_coco.py',
                         mix='mixup', with_masks=False),
}


def variants(task: str) -> tuple:
    return ('baseline', 'ips', TASKS[task].mix, 'teacher_kd', 'feature_kd')


class VariantStep:
    """``variant`` of ``task``, built on ``device``, ready to train on one generated batch.

    ``step()`` trains one step on the batch (the mixing transforms of the detection mixing
    variants run inside it, on a fresh copy of the samples; a teacher-KD step runs the
    frozen teacher's forward first) and returns the loss dict. ``prepared()`` and
    ``train_step(prepared)`` split it for callers that profile the step alone. ``close()``
    removes IPS's hooks.
    """

    def __init__(self, task: str, variant: str, device: str, crop: int, batch: int, ips_options: list = ()) -> None:
        import numpy as np
        import torch
        from mmengine.optim import OptimWrapper
        from mmengine.registry import DefaultScope

        import ipswap_mm  # noqa: F401 - registers IPS
        from ipswap_mm.engine.distill_hook import ips_hook_of
        self.spec = spec = TASKS[task]
        if variant not in variants(task):
            raise ValueError(f'{task} has the variants {variants(task)}, not {variant!r}')
        torch.manual_seed(0)
        np.random.seed(0)
        with DefaultScope.overwrite_default_scope(spec.scope):
            if variant == 'ips':
                cfg, self.model = spec.build(spec.ips, crop, device, options=ips_options)
            else:
                cfg, self.model = spec.build(spec.baseline, crop, device)
            self.hook = None
            if variant == 'ips':
                self.hook = ips_hook_of(cfg.custom_hooks)
                self.hook.attach(self.model)
            self.mix = spec.mixing(self.model, crop) if variant == spec.mix else None
            self.teacher = None
            self.teacher_features_only = variant == 'feature_kd'
            if variant in ('teacher_kd', 'feature_kd'):
                _, self.teacher = spec.build(spec.baseline, crop, device, depth=TEACHER_DEPTH)
                self.teacher.eval().requires_grad_(False)
        # foreach: the multi-tensor update that torch picks by default for CUDA parameters (a
        # handful of operator calls a step); on the CPU it defaults to a loop over the
        # parameters, about 3 calls each, which would swell the baseline's operator calls
        self.optim = OptimWrapper(torch.optim.SGD(self.model.parameters(), lr=1e-3, momentum=0.9, foreach=True))
        self.model.train()
        self.raw = spec.samples(batch, crop)

    @property
    def modules(self) -> list:
        return [m for m in (self.model, self.teacher) if m is not None]

    def prepared(self):
        return self.spec.prepare(self.raw, self.mix)

    def train_step(self, prepared) -> dict:
        import torch
        data = self.spec.collate(prepared, self.mix)
        if self.teacher is None:
            return self.model.train_step(data, self.optim)
        # as a KD framework runs it: the student's preprocessed batch feeds the frozen teacher,
        # whose outputs (a KD loss's targets) live until the student's update is done
        model = self.model
        with self.optim.optim_context(model):
            processed = model.data_preprocessor(data, True)
            with torch.no_grad():
                if self.teacher_features_only:
                    targets = self.teacher.extract_feat(processed['inputs'])
                else:
                    targets = self.teacher._forward(processed['inputs'], processed['data_samples'])
            losses = model._run_forward(processed, mode='loss')
        parsed, log_vars = model.parse_losses(losses)
        self.optim.update_params(parsed)
        del targets
        return log_vars

    def step(self) -> dict:
        return self.train_step(self.prepared())

    def close(self) -> None:
        if self.hook is not None:
            self.hook.detach()


def worker(task: str, variant: str, device: str, iters: int, warmup: int, crop: int, batch: int,
           memory_steps: int = 3, ips_options: list = ()) -> dict:
    """Train ``variant`` of ``task`` for ``warmup + iters`` steps on one generated batch; time each.
    On the CPU, then ``memory_steps`` more steps, untimed, each profiled (:func:`cpu_step_profile`;
    their swaps differ, and so do the instances a detector sees): the largest tensor peak and
    the mean work (GFLOP, operator calls) are reported."""
    import torch._inductor.config
    from mmengine.registry import DefaultScope
    torch._inductor.config.cpp.enable_kernel_profile = True  # count compiled kernels (cpu_step_profile)
    spec = TASKS[task]
    run = VariantStep(task, variant, device, crop, batch, ips_options)
    with DefaultScope.overwrite_default_scope(spec.scope):
        times = []
        for step in range(warmup + iters):
            prepared = run.prepared()
            synchronize(device)
            start = time.perf_counter()
            losses = run.train_step(prepared)
            synchronize(device)
            if step >= warmup:
                times.append(time.perf_counter() - start)
        result = dict(task=task, variant=variant, median_s=statistics.median(times), times=times,
                      peak_mb=peak_memory_mb(device), loss=losses['loss'].item(), losses=sorted(losses))
        if device == 'cpu' and memory_steps > 0:
            profiles = [cpu_step_profile(functools.partial(run.train_step, run.prepared()), run.modules,
                                         run.optim.optimizer)
                        for _ in range(memory_steps)]
            peaks = [profile['tensor_peak_mb'] for profile in profiles]
            result.update(tensor_peak_mb=max(peaks), tensor_peaks_mb=peaks,
                          gflops=statistics.mean(profile['gflops'] for profile in profiles),
                          op_calls=statistics.mean(profile['op_calls'] for profile in profiles),
                          gflops_per_step=[profile['gflops'] for profile in profiles],
                          op_calls_per_step=[profile['op_calls'] for profile in profiles])
        if variant == 'ips':
            result.update(swap_vs_copy(spec, run.model, spec.collate(spec.prepare(run.raw, None), None), device,
                                       iters))
        run.close()
    return result


def swap_vs_copy(spec, model, data: dict, device: str, iters: int) -> dict:
    """Median time of the swap alone vs. a plain copy of the same batch tensors.

    Every repetition swaps a fresh copy of the samples: the swap replaces their annotations,
    and swapping its own output again would cut the objects further, repetition after
    repetition (up to 2x the instances each time). Every pair swaps (``swap_prob`` 1 here): a
    batch in which no pair swaps comes back at once, and would pull the median down."""
    import torch

    from ipswap_mm.models.pair_swap_batch_aug import swaps_of
    processed = model.data_preprocessor(data, training=False)  # padded and normalised, on the device
    inputs, samples = processed['inputs'], processed['data_samples']
    swap = swaps_of(model)[0]
    swap.patch_swap.swap_prob = 1.0  # this worker's model is not trained after this
    swap_times, copy_times = [], []
    annotations = spec.annotations(samples)  # gathered once: the timed copy copies each tensor once
    for _ in range(max(iters, 20)):
        fresh = copy.deepcopy(samples)
        synchronize(device)
        start = time.perf_counter()
        swap(inputs, fresh)
        synchronize(device)
        swap_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        inputs.clone()
        for tensor in annotations:
            tensor.clone() if isinstance(tensor, torch.Tensor) else tensor.copy()
        synchronize(device)
        copy_times.append(time.perf_counter() - start)
    return dict(swap_s=statistics.median(swap_times), copy_s=statistics.median(copy_times))


def run_worker(task: str, variant: str, device: str, args, crop: int) -> dict:
    command = [sys.executable, __file__, '--worker', task, variant, '--device', device, '--iters', str(args.iters),
               '--warmup', str(args.warmup), '--crop', str(crop), '--batch', str(args.batch),
               '--memory-steps', str(args.memory_steps), '--ips-options', *args.ips_options]
    process = subprocess.run(command, capture_output=True, text=True)
    if process.returncode != 0:
        raise SystemExit(f'benchmark worker {task}/{variant} failed:\n{process.stderr[-4000:]}')
    result = json.loads(process.stdout.strip().splitlines()[-1])
    print(f"{task}/{variant}: median step {result['median_s']:.4f} s, peak {result['peak_mb']:.0f} MB",
          file=sys.stderr, flush=True)
    return result


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--device', default=None, help='cpu or cuda (default: cuda if available)')
    parser.add_argument('--tasks', default='seg,two_stage,one_stage', help=f'comma-separated, of {sorted(TASKS)}')
    parser.add_argument('--iters', type=positive_int, default=10)
    parser.add_argument('--warmup', type=nonnegative_int, default=3)
    parser.add_argument('--rounds', type=positive_int, default=3,
                        help='repeat every variant this many times, interleaved')
    parser.add_argument('--variants', default=None,
                        help='comma-separated subset of baseline, ips and the task\'s mixing, teacher_kd and '
                             'feature_kd variants '
                             '(default: all; baseline is always run)')
    parser.add_argument('--crop', type=positive_int, default=None,
                        help='image side (the crop for segmentation); default: 512 on cuda, 128 on cpu')
    parser.add_argument('--batch', type=positive_int, default=4, help='images per batch, even (whole pairs)')
    parser.add_argument('--memory-steps', type=nonnegative_int, default=3,
                        help='CPU: profile this many extra steps per worker for their tensor peak, '
                             'GFLOP and operator calls (0: none)')
    parser.add_argument('--ips-options', nargs='*', default=[], metavar='KEY=VALUE',
                        help='overrides of the IPS config, as --cfg-options, e.g. '
                             'model.data_preprocessor.batch_augments.0.min_visible_ratio=0.51')
    parser.add_argument('--out', default='work_dirs/benchmark_cost')
    parser.add_argument('--worker', nargs=2, metavar=('TASK', 'VARIANT'), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    tasks = parse_tasks(parser, args.tasks, args.batch)
    import torch
    device = args.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    crop = args.crop or (512 if device.startswith('cuda') else 128)
    if args.worker:
        print(json.dumps(worker(*args.worker, device, args.iters, args.warmup, crop, args.batch, args.memory_steps,
                                args.ips_options)))
        return

    wanted = None if args.variants is None else {'baseline', *args.variants.split(',')}
    known = {variant for task in tasks for variant in variants(task)}
    if wanted is not None and wanted - known:
        raise SystemExit(f'--variants: unknown {sorted(wanted - known)}; these tasks have {sorted(known)}')
    results, finished = {}, []
    os.makedirs(args.out, exist_ok=True)
    for round_index in range(args.rounds):
        for task in tasks:
            chosen = [variant for variant in variants(task) if wanted is None or variant in wanted]
            shift = round_index % len(chosen)  # each round starts with another variant: none is always first
            for variant in chosen[shift:] + chosen[:shift]:
                finished.append(run_worker(task, variant, device, args, crop))
                add_result(results, finished[-1])
                save_workers(finished, args.out)
    report(results, device, crop, args)


def parse_tasks(parser: argparse.ArgumentParser, tasks: str, batch: int) -> list:
    """``--tasks`` as a list; ``parser.error`` for an unknown task or an odd ``--batch``."""
    tasks = tasks.split(',')
    unknown = [task for task in tasks if task not in TASKS]
    if unknown or batch % 2:
        parser.error(f'--tasks: unknown {unknown}, choose from {sorted(TASKS)}' if unknown
                     else f'--batch {batch} is odd: batches hold whole pairs')
    return tasks


def save_workers(finished: list, out: str) -> None:
    """Write every worker's result so far to ``out/workers.json``: a run cut short keeps what it measured."""
    with open(osp.join(out, 'workers.json'), 'w') as file:
        json.dump(dict(command=' '.join(sys.argv), workers=finished), file, indent=1)


def add_result(results: dict, result: dict) -> None:
    """Merge one worker's result into ``results[(task, variant)]`` (times pooled, peak memory maxed)."""
    previous = results.setdefault((result['task'], result['variant']), dict(result, times=[], rounds=[],
                                                                                peak_mb=0.0))
    previous['times'] += result['times']
    previous['rounds'].append(result['times'])
    previous['peak_mb'] = max(previous['peak_mb'], result['peak_mb'])
    if 'tensor_peak_mb' in result:  # the same every round (deterministic steps): kept from the first
        for key in ('tensor_peak_mb', 'gflops', 'op_calls'):
            previous.setdefault(key, result[key])
    for key in ('swap_s', 'copy_s'):
        if key in result:
            previous.setdefault(f'{key}_all', []).append(result[key])


def fastest_round_median(rounds: list) -> float:
    """Median over steps of the fastest round of each step (``rounds``: one list of step times per round)."""
    steps = min(len(times) for times in rounds)
    return statistics.median(min(times[step] for times in rounds) for step in range(steps))


def report(results: dict, device: str, crop: int, args) -> list:
    """Print the table; write ``cost.json`` and ``cost.png`` to ``args.out``; return the rows."""
    os.makedirs(args.out, exist_ok=True)
    rows = []
    for (task, variant), result in results.items():
        base = results[(task, 'baseline')]
        time_s = fastest_round_median(result['rounds'])
        row = dict(task=task, variant=variant, time_s=time_s, median_s=statistics.median(result['times']),
                   peak_mb=result['peak_mb'], time_ratio=time_s / fastest_round_median(base['rounds']),
                   median_ratio=statistics.median(result['times']) / statistics.median(base['times']),
                   memory_ratio=result['peak_mb'] / base['peak_mb'], loss=result.get('loss', math.nan))
        if 'tensor_peak_mb' in result and 'tensor_peak_mb' in base:
            row.update(tensor_peak_mb=result['tensor_peak_mb'], gflops=result['gflops'], op_calls=result['op_calls'],
                       tensor_memory_ratio=result['tensor_peak_mb'] / base['tensor_peak_mb'],
                       flops_ratio=result['gflops'] / base['gflops'],
                       op_calls_ratio=result['op_calls'] / base['op_calls'])
        if 'swap_s_all' in result:
            row['swap_s'] = statistics.median(result['swap_s_all'])
            row['copy_s'] = statistics.median(result['copy_s_all'])
            row['swap_over_copy'] = row['swap_s'] / row['copy_s']
        rows.append(row)
    meta = dict(device=device if not device.startswith('cuda') else torch_device_name(), crop=crop,
                batch=args.batch, iters=args.iters, warmup=args.warmup, rounds=args.rounds,
                memory='torch.cuda.max_memory_allocated' if device.startswith('cuda') else
                'process max RSS (peak_mb); tensor memory at the peak of a profiled step (tensor_peak_mb)',
                work='CPU, profiled steps: mean GFLOP the profiler counts (gflops), operator calls (op_calls)',
                tasks={task: dict(baseline=TASKS[task].baseline, ips=TASKS[task].ips, mixing=TASKS[task].mix)
                       for task in sorted({row['task'] for row in rows})},
                note='detection mixing (copypaste, mixup) is a CPU pipeline transform timed inside the step; '
                     'teacher_kd adds a frozen ResNet-101 twin forward, feature_kd its backbone and neck only, '
                     'both without the distillation loss',
                command=' '.join(sys.argv))
    with open(osp.join(args.out, 'cost.json'), 'w') as file:
        json.dump(dict(meta=meta, rows=rows), file, indent=2)
    print(f"device: {meta['device']}, image side {crop}, batch {args.batch}, "
          f"{args.iters} iterations x {args.rounds} rounds")
    print(f"{'task':<10} {'variant':<11} {'s/iter':>8} {'time x':>7} {'median s':>9} {'median x':>9} "
          f"{'peak MB':>9} {'memory x':>9}")
    for row in rows:
        print(f"{row['task']:<10} {row['variant']:<11} {row['time_s']:>8.3f} {row['time_ratio']:>7.3f} "
              f"{row['median_s']:>9.3f} {row['median_ratio']:>9.3f} {row['peak_mb']:>9.0f} {row['memory_ratio']:>9.3f}")
    for row in rows:
        if 'tensor_memory_ratio' in row:
            print(f"{row['task']}/{row['variant']}: tensor memory at the step's peak {row['tensor_peak_mb']:.0f} MB, "
                  f"{row['tensor_memory_ratio']:.3f}x the baseline's; {row['gflops']:.1f} GFLOP a step, "
                  f"{row['flops_ratio']:.3f}x; {row['op_calls']:.0f} operator calls a step, "
                  f"{row['op_calls_ratio']:.3f}x")
    for row in rows:
        if 'swap_over_copy' in row:
            print(f"{row['task']}: the swap alone takes {row['swap_s'] * 1e3:.2f} ms, "
                  f"{row['swap_over_copy']:.2f}x a plain copy of the batch tensors")
    # a single timed step (--iters 1 --rounds 1, as the counting runs use) is no measurement of time
    plot(rows, osp.join(args.out, 'cost.png'), timed=args.iters * args.rounds > 1)
    return rows


def torch_device_name() -> str:
    import torch
    return torch.cuda.get_device_name()


PLOTTED = (  # (row key, label): the counted ratios first (the same on every run), then the timed ones
    ('flops_ratio', 'FLOPs'), ('op_calls_ratio', 'operator calls'), ('tensor_memory_ratio', 'tensor peak'),
    ('time_ratio', 'time (fastest rounds)'), ('memory_ratio', 'peak RSS'))


def plot(rows: list, path: str, timed: bool = True) -> None:
    """Bars of every variant's ratios to its task's baseline: the counted work where the rows
    have it (profiled CPU steps), and the step time and peak memory unless ``timed`` is
    False and there are counts."""
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt
    present = [(key, label) for key, label in PLOTTED if any(key in row for row in rows)]
    counted = [(key, label) for key, label in present if key not in ('time_ratio', 'memory_ratio')]
    shown = present if timed or not counted else counted  # a GPU run has no counts: its times, whatever they are
    rows = [row for row in rows if row['variant'] != 'baseline']
    width = 0.8 / len(shown)
    figure, axis = plt.subplots(figsize=(1.1 * len(rows) + 2, 3.4))
    for index, (key, label) in enumerate(shown):
        axis.bar([p + (index - (len(shown) - 1) / 2) * width for p in range(len(rows))],
                 [row.get(key, float('nan')) for row in rows], width, label=label)
    axis.axhline(1.0, color='black', linewidth=0.8)
    axis.axhline(1.05, color='grey', linestyle='--', linewidth=1, label='1.05x')
    axis.set_xticks(list(range(len(rows))), [f"{row['task']}\n{row['variant']}" for row in rows], fontsize=7)
    axis.set_ylabel('variant / baseline')
    axis.set_ylim(bottom=0.8)
    axis.legend(fontsize=7, ncol=len(shown) + 1)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


if __name__ == '__main__':
    main()
