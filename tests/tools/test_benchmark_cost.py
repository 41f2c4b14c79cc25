"""``tools/benchmark_cost.py`` at toy size: every variant of a detection task trains and is reported."""
import json
import math

import pytest
import torch
from mmengine.registry import DefaultScope

from tools import benchmark_cost


@pytest.fixture
def one_thread():
    """One intra-op thread: on a shared 2-core machine two threads only fight over the cores."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def current_scope() -> tuple | None:
    """Name and scope of the current default scope (mmengine restores scopes as deep copies, not the objects)."""
    scope = DefaultScope.get_current_instance()
    return None if scope is None else (scope.instance_name, scope.scope_name)


def in_process(task, variant, device, args, crop):
    return benchmark_cost.worker(task, variant, device, args.iters, args.warmup, crop, args.batch, args.memory_steps)


@pytest.mark.timeout(300)
def test_one_stage_variants_are_timed_and_reported(tmp_path, monkeypatch, capsys, one_thread):
    monkeypatch.setattr(benchmark_cost, 'run_worker', in_process)  # the workers' subprocesses, in this one
    scope = current_scope()
    benchmark_cost.main(['--tasks', 'one_stage', '--device', 'cpu', '--iters', '1', '--warmup', '0', '--rounds',
                         '1', '--crop', '64', '--batch', '2', '--memory-steps', '2', '--out', str(tmp_path)])
    assert current_scope() == scope  # the workers leave the default scope as it was
    with open(tmp_path / 'cost.json') as file:
        report = json.load(file)
    rows = {row['variant']: row for row in report['rows']}
    assert sorted(rows) == ['baseline', 'feature_kd', 'ips', 'mixup', 'teacher_kd']
    for row in rows.values():
        assert row['task'] == 'one_stage'
        for key in ('time_s', 'median_s', 'peak_mb', 'time_ratio', 'median_ratio', 'memory_ratio', 'loss'):
            assert math.isfinite(row[key]) and row[key] > 0, (row['variant'], key)
    assert rows['baseline']['time_ratio'] == rows['baseline']['memory_ratio'] == 1.0
    assert rows['baseline']['tensor_memory_ratio'] == rows['baseline']['flops_ratio'] == 1.0
    assert rows['baseline']['op_calls_ratio'] == 1.0
    # a frozen teacher's forward is more work, and more calls, than the step alone
    assert rows['teacher_kd']['flops_ratio'] > 1.2 and rows['teacher_kd']['op_calls_ratio'] > 1.2
    # its backbone and neck alone: more than the step, less than its whole forward
    assert 1.0 < rows['feature_kd']['flops_ratio'] < rows['teacher_kd']['flops_ratio']
    # the teacher's ResNet-101 weights are resident tensors: counted
    assert rows['teacher_kd']['tensor_peak_mb'] > rows['baseline']['tensor_peak_mb'] + 100
    assert all(math.isfinite(rows['ips'][key]) and rows['ips'][key] > 0 for key in ('swap_s', 'copy_s'))
    assert report['meta']['tasks']['one_stage']['mixing'] == 'mixup'
    assert (tmp_path / 'cost.png').stat().st_size > 0
    assert 'one_stage  teacher_kd' in capsys.readouterr().out


@pytest.mark.timeout(300)
def test_two_stage_copy_paste_and_swap_carry_masks(one_thread):
    spec = benchmark_cost.TASKS['two_stage']
    raw = spec.samples(2, 64)
    assert all(3 in result['gt_bboxes_labels'] for result in raw)  # the pair shares its class
    assert all(len(result['gt_masks']) == len(result['gt_bboxes']) for result in raw)
    for variant in ('copypaste', 'ips'):
        result = benchmark_cost.worker('two_stage', variant, 'cpu', iters=1, warmup=0, crop=64, batch=2)
        assert math.isfinite(result['loss']) and 'loss_mask' in result['losses']
        assert ('loss_ips_kl' in result['losses']) == (variant == 'ips')


@pytest.mark.timeout(300)
def test_the_swap_is_timed_on_batches_in_which_every_pair_swaps(one_thread):
    """The config's swap_prob is 0.5 and a batch that swaps nothing comes back at once: a median
    over such repetitions would understate the swap."""
    spec = benchmark_cost.TASKS['one_stage']
    run = benchmark_cost.VariantStep('one_stage', 'ips', 'cpu', 64, 2)
    from ipswap_mm.models.pair_swap_batch_aug import swaps_of
    swap = swaps_of(run.model)[0]
    assert swap.patch_swap.swap_prob == 0.5
    forward, unchanged = swap.forward, []

    def recording(inputs, data_samples):
        outputs = forward(inputs, data_samples)
        unchanged.append(outputs[0] is inputs)
        return outputs

    swap.forward = recording
    with DefaultScope.overwrite_default_scope(spec.scope):
        result = benchmark_cost.swap_vs_copy(spec, run.model, spec.collate(spec.prepare(run.raw, None), None), 'cpu',
                                             iters=20)
    run.close()
    assert len(unchanged) == 20 and not any(unchanged)
    assert result['swap_s'] > 0 and result['copy_s'] > 0


def test_fastest_round_filters_outside_noise_but_keeps_step_to_step_differences():
    # step 2 is slow in every round (the variant's own cost); round 2 is disturbed at step 0
    rounds = [[1.0, 1.1, 3.0], [2.5, 1.0, 3.2]]
    assert benchmark_cost.fastest_round_median(rounds) == 1.0  # median of (1.0, 1.0, 3.0)
    assert benchmark_cost.fastest_round_median([[1.0, 5.0, 5.0]]) == 5.0


@pytest.mark.timeout(300)
def test_variants_option_runs_the_baseline_and_the_chosen_variants(tmp_path, monkeypatch, one_thread):
    ran = []

    def record(task, variant, device, args, crop):
        ran.append(variant)
        return dict(task=task, variant=variant, times=[1.0 + (variant == 'ips')], peak_mb=10.0, loss=1.0)

    monkeypatch.setattr(benchmark_cost, 'run_worker', record)
    benchmark_cost.main(['--tasks', 'one_stage', '--device', 'cpu', '--variants', 'ips', '--rounds', '2',
                         '--out', str(tmp_path)])
    assert ran == ['baseline', 'ips', 'ips', 'baseline']  # the order turns round by round
    with open(tmp_path / 'cost.json') as file:
        rows = {row['variant']: row for row in json.load(file)['rows']}
    assert rows['ips']['time_ratio'] == 2.0 and rows['baseline']['time_ratio'] == 1.0


def test_an_unknown_variant_is_named_before_anything_runs(tmp_path, monkeypatch):
    monkeypatch.setattr(benchmark_cost, 'run_worker', lambda *args: pytest.fail('a worker ran'))
    with pytest.raises(SystemExit, match=r"--variants: unknown \['teacher-kd'\]"):
        benchmark_cost.main(['--tasks', 'one_stage', '--device', 'cpu', '--variants', 'teacher-kd',
                             '--out', str(tmp_path)])


@pytest.mark.timeout(300)
def test_a_teacher_kd_step_preprocesses_the_batch_once_and_the_swap_copy_copies_it_once(one_thread):
    """As a KD framework runs it: the teacher reads the student's preprocessed batch; and the
    plain copy the swap is timed against writes every label map once (it stacked, then cloned)."""
    step = benchmark_cost.VariantStep('seg', 'teacher_kd', 'cpu', 64, 2)
    calls = []
    for module in step.modules:
        preprocess = module.data_preprocessor.forward
        module.data_preprocessor.forward = lambda *args, _f=preprocess, **kwargs: calls.append(1) or _f(*args,
                                                                                                       **kwargs)
    step.step()
    assert len(calls) == 1
    step.close()
    spec = benchmark_cost.TASKS['seg']
    run = benchmark_cost.VariantStep('seg', 'ips', 'cpu', 64, 2)
    gathered = []
    annotations = spec.annotations
    spec.annotations = lambda samples: gathered.append(1) or annotations(samples)
    try:
        with DefaultScope.overwrite_default_scope(spec.scope):
            benchmark_cost.swap_vs_copy(spec, run.model, spec.collate(spec.prepare(run.raw, None), None), 'cpu',
                                        iters=20)
    finally:
        del spec.annotations
        run.close()
    assert len(gathered) == 1  # stacked once, outside the timer; each repetition clones it


def test_a_run_cut_short_keeps_every_finished_worker(tmp_path, monkeypatch):
    def record(task, variant, device, args, crop):
        if variant == 'ips':
            raise SystemExit('benchmark worker one_stage/ips failed')  # as a killed worker is reported
        return dict(task=task, variant=variant, times=[1.5], peak_mb=10.0, loss=1.0)

    monkeypatch.setattr(benchmark_cost, 'run_worker', record)
    with pytest.raises(SystemExit):
        benchmark_cost.main(['--tasks', 'one_stage', '--device', 'cpu', '--variants', 'ips', '--out', str(tmp_path)])
    with open(tmp_path / 'workers.json') as file:
        saved = json.load(file)
    assert [worker['variant'] for worker in saved['workers']] == ['baseline']
    assert saved['workers'][0]['times'] == [1.5]
    assert not (tmp_path / 'cost.json').exists()


def test_cpu_tensor_peak_counts_resident_tensors_and_the_steps_highest_live_sum():
    model = torch.nn.Linear(1000, 1000)  # 4,004,000 bytes of parameters
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.ones(1, 1000)).sum().backward()
    optimizer.step()  # momentum buffers: another 4,004,000 bytes
    optimizer.zero_grad()

    def step():
        first = torch.ones(1_000_000)  # 4 MB
        second = torch.ones(2_000_000)  # 8 MB while the first is alive: the peak
        del first, second
        third = torch.ones(2_500_000)  # 10 MB, alone: below the peak
        del third

    profile = benchmark_cost.cpu_step_profile(step, [model], optimizer)
    assert abs(profile['tensor_peak_mb'] - (2 * 4_004_000 + 12_000_000) / 2**20) < 0.01
    assert profile['op_calls'] == 3 and profile['gflops'] == 0  # three torch.ones, no arithmetic


def test_cpu_step_profile_counts_the_work_of_a_step():
    model = torch.nn.Linear(500, 300, bias=False)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    inputs = torch.ones(8, 500)

    def one_product():
        model(inputs)

    def two_products():
        model(inputs)
        model(inputs)

    one = benchmark_cost.cpu_step_profile(one_product, [model], optimizer)
    two = benchmark_cost.cpu_step_profile(two_products, [model], optimizer)
    assert one['gflops'] == pytest.approx(2 * 8 * 500 * 300 / 1e9)  # multiply-adds of an (8, 500) x (500, 300)
    assert two['gflops'] == pytest.approx(2 * one['gflops'])
    assert two['op_calls'] == 2 * one['op_calls'] >= 2  # a linear layer is one call; its inner matmul is not


def test_cpu_step_profile_counts_a_compiled_kernel_as_one_call(monkeypatch):
    import torch._inductor.config
    monkeypatch.setattr(torch._inductor.config.cpp, 'enable_kernel_profile', True)  # as the workers set it
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    inputs = torch.rand(64)

    def chain(x):  # five element-wise operators, which inductor fuses into one kernel
        return (((x + 1) * 2).sin() - 3).abs()

    compiled = torch.compile(chain)
    compiled(inputs)  # compiles outside the profile, as a worker's untimed first step does
    eager = benchmark_cost.cpu_step_profile(lambda: chain(inputs), [], optimizer)
    fused = benchmark_cost.cpu_step_profile(lambda: compiled(inputs), [], optimizer)
    assert eager['op_calls'] == 5
    assert fused['op_calls'] == 1  # the fused kernel; its output is allocated inside it, not by an ATen call


@pytest.mark.parametrize('transposed', [False, True])
def test_backward_convolutions_count_one_forward_per_gradient(transposed):
    conv = (torch.nn.ConvTranspose2d if transposed else torch.nn.Conv2d)(4, 6, 3, groups=2, bias=False)
    optimizer = torch.optim.SGD(conv.parameters(), lr=0.1)
    frozen_input = torch.ones(2, 4, 10, 10)
    learned_input = torch.ones(2, 4, 10, 10, requires_grad=True)

    def forward():
        conv(frozen_input)

    def backward(inputs):
        return lambda: conv(inputs).sum().backward()

    forward_gflops = benchmark_cost.cpu_step_profile(forward, [conv], optimizer)['gflops']
    assert forward_gflops > 0
    # the weight's gradient only; then the input's too; plus the sum's few additions
    weight_only = benchmark_cost.cpu_step_profile(backward(frozen_input), [conv], optimizer)['gflops']
    both = benchmark_cost.cpu_step_profile(backward(learned_input), [conv], optimizer)['gflops']
    assert weight_only == pytest.approx(2 * forward_gflops, rel=0.01)
    assert both == pytest.approx(3 * forward_gflops, rel=0.01)


def test_ips_options_override_the_ips_config_like_cfg_options():
    cfg = benchmark_cost.load_config('configs/ipswap_mask-rcnn_r50_fpn_1x_coco.py',
                                     ['model.data_preprocessor.batch_augments.0.min_visible_ratio=0.51',
                                      'custom_hooks.0.loss.teacher=symmetric'])
    assert cfg.model.data_preprocessor.batch_augments[0].min_visible_ratio == 0.51
    assert cfg.custom_hooks[0].loss.teacher == 'symmetric'
    assert cfg.model.data_preprocessor.batch_augments[0].min_visible_area == 16  # the rest as configured
