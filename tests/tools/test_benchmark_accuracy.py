import json
import math
import os.path as osp

import pytest

from tools.benchmark_accuracy import (
    IPS_OVERRIDES,
    MISSING,
    OVERRIDES,
    TASKS,
    build_config,
    lookup,
    main,
    parse_args,
    parse_sweep,
)

PATCH = 'model.data_preprocessor.batch_augments.0.patch_size'
TEMPERATURE = 'custom_hooks.0.loss.temperature'
TOY = ['--seeds', '0', '--iters', '2', '--val-interval', '2', '--num-train', '4', '--num-val', '2', '--batch', '2']


@pytest.fixture(scope='module')
def toy_run(tmp_path_factory):
    out = str(tmp_path_factory.mktemp('benchmark_accuracy'))
    # T=1.0 is the IPS default: the sweep row reuses the ips runs instead of training them again
    payload = main(['--tasks', 'seg,det', *TOY, '--out', out, '--sweep', f'{TEMPERATURE}=1.0'])
    return out, payload


def test_toy_run_writes_a_row_per_task_and_variant_with_finite_metrics(toy_run):
    out, payload = toy_run
    with open(osp.join(out, 'accuracy.json')) as file:
        stored = json.load(file)
    rows = {(row['task'], row['variant']): row for row in stored['rows']}
    assert set(rows) == {(task, variant) for task in ('seg', 'det')
                         for variant in ('baseline', 'ips', 'ips temperature=1.0')}
    for row in rows.values():
        assert row['iters'] == 2 and row['seeds'] == [0] and len(row['values']) == 1
        assert math.isfinite(row['mean']) and row['std'] is None  # one seed: no spread
    for run in stored['runs']:
        assert [entry['iter'] for entry in run['losses']] == [1, 2]
        assert all(math.isfinite(entry['loss']) for entry in run['losses'])
        assert [point['iter'] for point in run['val_curve']] == [2]
        assert ('loss_ips_kl' in run['losses'][0]) == run['variant'].startswith('ips')
    assert stored['meta']['command'].startswith('python tools/benchmark_accuracy.py --tasks seg,det')
    assert payload['rows'] == stored['rows']
    assert osp.getsize(osp.join(out, 'curves.png')) > 0


def test_sweep_row_at_the_default_value_reuses_the_ips_runs(toy_run):
    _, payload = toy_run
    rows = {(row['task'], row['variant']): row for row in payload['rows']}
    for task in ('seg', 'det'):
        swept = rows[(task, 'ips temperature=1.0')]
        assert swept['reused_from'] == 'ips' and swept['values'] == rows[(task, 'ips')]['values']
        assert swept['cfg_options'] == {TEMPERATURE: 1.0}
        assert swept['command'].endswith(f'--cfg-options {TEMPERATURE}=1.0')


def test_markdown_lists_every_row_with_its_command(toy_run):
    out, payload = toy_run
    with open(osp.join(out, 'accuracy.md')) as file:
        text = file.read()
    for row in payload['rows']:
        assert f"| {row['task']} | {row['variant']}" in text
        assert f"`{row['command']}`" in text
    assert 'python tools/benchmark_accuracy.py --tasks seg --variants baseline --seeds 0 --iters 2' in text
    assert 'IPS minus baseline, paired by seed' in text


def test_sweep_values_parse_like_cfg_options():
    assert parse_sweep([f'{PATCH}=8,16']) == [(PATCH, [8, 16])]
    assert parse_sweep(['model.data_preprocessor.batch_augments.0.swap_ratio=(0.3,0.7),0.5']) == \
        [('model.data_preprocessor.batch_augments.0.swap_ratio', [(0.3, 0.7), 0.5])]
    assert parse_sweep([f'{TEMPERATURE}=2.0', 'custom_hooks.0.loss.loss_weight=0.5,1']) == \
        [(TEMPERATURE, [2.0]), ('custom_hooks.0.loss.loss_weight', [0.5, 1])]


@pytest.mark.parametrize('item, message', [
    ('patch_size', 'expected KEY=V1,V2'),
    (f'{PATCH}=', 'expected KEY=V1,V2'),
    (f'{PATCH}=8,,16', 'empty value'),
    ('model..patch_size=8', 'not a dotted config key'),
])
def test_malformed_sweep_is_rejected_with_a_clear_error(item, message, capsys):
    with pytest.raises(SystemExit):
        parse_args(['--sweep', item])
    assert message in capsys.readouterr().err


def test_sweep_key_missing_from_the_ips_config_is_rejected_before_training(tmp_path):
    with pytest.raises(SystemExit, match=r"has no key 'model.data_preprocessor.batch_augments.0.patchsize'"):
        main(['--tasks', 'seg', *TOY, '--out', str(tmp_path), '--sweep',
              'model.data_preprocessor.batch_augments.0.patchsize=8'])
    assert not osp.exists(osp.join(tmp_path, 'runs'))


def test_a_sweep_takes_an_ips_option_the_config_leaves_at_its_default(tmp_path):
    """As --cfg-options does: custom_hooks.0.loss.compile is no key of the config, but an
    argument of its PairKLDivLoss."""
    import tools.benchmark_accuracy as bench
    args = parse_args(['--tasks', 'seg', '--out', str(tmp_path), '--sweep', 'custom_hooks.0.loss.compile=True,False'])
    bench.check_sweeps(args)  # raised SweepError: the config has no such key


def test_variants_share_the_overrides_and_a_sweep_value_lands_in_the_config(tmp_path):
    kwargs = dict(data_root=str(tmp_path), seed=3, iters=10, val_interval=5, batch=4, size=64,
                  work_dir=str(tmp_path / 'w'))
    for task in ('seg', 'det'):
        baseline = build_config(task, 'baseline', **kwargs)
        ips = build_config(task, 'ips', **kwargs)
        swept = build_config(task, 'ips', cfg_options={PATCH: 32, TEMPERATURE: 2.0}, **kwargs)
        for key, value in OVERRIDES[task].items():
            if isinstance(value, dict) or value is None:
                continue
            assert lookup(baseline._cfg_dict, key) == lookup(ips._cfg_dict, key) == value
        assert baseline.model.backbone == ips.model.backbone
        assert baseline.optim_wrapper == ips.optim_wrapper and baseline.param_scheduler == ips.param_scheduler
        assert baseline.train_dataloader.batch_size == ips.train_dataloader.batch_size == 4
        assert baseline.randomness.seed == ips.randomness.seed == 3
        assert lookup(baseline._cfg_dict, PATCH) is MISSING
        assert lookup(ips._cfg_dict, PATCH) == IPS_OVERRIDES[task].get(PATCH, 32)  # the config's own value
        assert lookup(swept._cfg_dict, PATCH) == 32 and lookup(swept._cfg_dict, TEMPERATURE) == 2.0


def test_every_run_logs_its_scalars_into_its_own_work_dir(toy_run):
    import glob
    _, payload = toy_run
    trained = [run for run in payload['runs'] if not run.get('reused_from')]
    assert len({run['work_dir'] for run in trained}) == len(trained) == 4
    for run in trained:
        files = glob.glob(osp.join(run['work_dir'], '*', 'vis_data', 'scalars.json'))
        assert len(files) == 1, run['work_dir']
        with open(files[0]) as file:
            steps = [json.loads(line).get('iter') for line in file]
        assert [step for step in steps if step is not None] == [1, 2]  # this run's two iterations, no other's


def test_a_run_can_start_from_a_checkpoint_of_an_earlier_run(tmp_path):
    """The README's warm-start recipe: a baseline run saves its weights, a second run starts from them."""
    first = main(['--tasks', 'seg', '--variants', 'baseline', *TOY, '--out', str(tmp_path / 'init'),
                  '--cfg-options', 'default_hooks.checkpoint.interval=2'])
    checkpoint = osp.join(first['runs'][0]['work_dir'], 'iter_2.pth')
    assert osp.exists(checkpoint)
    warm = main(['--tasks', 'seg', '--variants', 'baseline', *TOY, '--out', str(tmp_path / 'warm'),
                 '--cfg-options', f'load_from={checkpoint}'])
    # same seed, same first batch: only the starting weights differ
    assert warm['runs'][0]['losses'][0]['loss'] != first['runs'][0]['losses'][0]['loss']
    with open(tmp_path / 'warm' / 'accuracy.md') as file:
        assert f'from the weights of `{checkpoint}`' in file.read()


def test_ips_block_options_go_to_the_ips_runs_only(tmp_path):
    """`--cfg-options custom_hooks.0.loss.loss_weight=...` with both variants: merged into the
    baseline config it would make `custom_hooks` a dict that MMEngine's runner rejects."""
    from mmengine.config import Config
    weight = 'custom_hooks.0.loss.loss_weight'
    payload = main(['--tasks', 'seg', '--variants', 'baseline,ips', *TOY, '--out', str(tmp_path),
                    '--cfg-options', f'{weight}=0.5', 'default_hooks.logger.interval=1'])
    runs = {run['variant']: run for run in payload['runs']}
    dumped = {variant: Config.fromfile(osp.join(run['work_dir'], osp.basename(TASKS['seg'][variant])))
              for variant, run in runs.items()}
    assert 'custom_hooks' not in dumped['baseline'] and lookup(dumped['ips']._cfg_dict, weight) == 0.5
    assert dumped['baseline'].default_hooks.logger.interval == dumped['ips'].default_hooks.logger.interval == 1
    commands = {row['variant']: row['command'] for row in payload['rows']}
    assert weight not in commands['baseline'] and f'{weight}=0.5' in commands['ips']
    assert 'default_hooks.logger.interval=1' in commands['baseline']
    with open(osp.join(tmp_path, 'accuracy.md')) as file:
        assert f'IPS runs only (keys of the IPS block, which the baseline config does not have): `{weight}=0.5`' \
            in file.read()


def test_a_sweep_of_a_key_that_cfg_options_also_sets_reports_the_swept_value(tmp_path):
    """`--cfg-options T=2.0 --sweep T=1.0`: the swept row trains at 1.0 and its command says so."""
    payload = main(['--tasks', 'seg', '--variants', 'ips', *TOY, '--out', str(tmp_path),
                    '--cfg-options', f'{TEMPERATURE}=2.0', '--sweep', f'{TEMPERATURE}=1.0'])
    rows = {row['variant']: row for row in payload['rows']}
    assert f'{TEMPERATURE}=2.0' in rows['ips']['command']
    swept = rows['ips temperature=1.0']
    assert swept['cfg_options'] == {TEMPERATURE: 1.0}
    assert f'{TEMPERATURE}=1.0' in swept['command'] and f'{TEMPERATURE}=2.0' not in swept['command']


def test_start_up_checks_build_each_config_once(tmp_path, monkeypatch):
    """The sweep check, the IPS-only options and the plan share one build per task and variant;
    the IPS config they see carries --cfg-options, the cached one does not."""
    import tools.benchmark_accuracy as bench
    built = []

    def counting_build(task, variant, *args, **kwargs):
        built.append((task, variant))
        return build_config(task, variant, *args, **kwargs)

    monkeypatch.setattr(bench, 'build_config', counting_build)
    args = parse_args(['--tasks', 'seg,det', '--out', str(tmp_path), '--sweep', f'{TEMPERATURE}=1.0,4.0',
                       '--cfg-options', f'{TEMPERATURE}=2.0'])
    bench.check_sweeps(args)
    args.ips_only = bench.ips_only_options(args)
    items = bench.plan(args)
    assert sorted(built) == sorted((task, variant) for task in ('seg', 'det') for variant in ('baseline', 'ips'))
    assert lookup(bench.startup_config(args, 'seg', 'ips', with_options=True), TEMPERATURE) == 2.0
    assert lookup(bench.startup_config(args, 'seg', 'ips'), TEMPERATURE) == 1.0
    # 1.0 is not the value the IPS runs train with (2.0): its row trains, it reuses nothing
    assert [item[4] for item in items if item[0] == 'seg'] == [None, None, None, None]


def test_warm_start_trains_the_baseline_once_and_every_run_starts_from_it(tmp_path):
    """`--start warm`: one start run (the baseline config, its own seed and length) saves a
    checkpoint; both variants load it; a second command reuses it; another seed trains anew."""
    from mmengine.config import Config
    toy = ['--tasks', 'seg', '--variants', 'baseline,ips', *TOY, '--out', str(tmp_path), '--start', 'warm',
           '--init-iters', '3', '--init-seed', '1']
    first = main(toy)
    init = first['meta']['init']['seg']
    assert init['checkpoint'] == osp.join(str(tmp_path), 'init', 'seg', 'seed1_iters3', 'iter_3.pth')
    assert osp.exists(init['checkpoint']) and not init['reused'] and math.isfinite(init['value'])
    assert init['val_curve'][-1]['iter'] == 3  # the start run's own length, not --iters
    for run in first['runs']:
        dumped = Config.fromfile(osp.join(run['work_dir'], osp.basename(TASKS['seg'][run['variant']])))
        assert dumped.load_from == init['checkpoint'] and dumped.train_cfg.max_iters == 2
        assert 'load_from' not in run['cfg_options']  # the rows' commands say --start warm instead
    for row in first['rows']:
        assert row['command'].endswith('--start warm --init-seed 1 --init-iters 3')
    with open(tmp_path / 'accuracy.md') as file:
        text = file.read()
    assert f"from the weights of `{init['checkpoint']}` (the baseline, seed 1, 3 iterations from scratch" in text
    assert '**Warning:** the seg start checkpoint reached' in text  # 3 iterations learn nothing
    mtime = osp.getmtime(init['checkpoint'])
    again = main(toy)
    assert again['meta']['init']['seg']['reused'] and osp.getmtime(init['checkpoint']) == mtime
    assert [run['value'] for run in again['runs']] == [run['value'] for run in first['runs']]
    assert main([*toy, '--verbose'])['meta']['init']['seg']['reused']  # the log level is not the model's
    # a shared --cfg-options key changes the start run's config: it trains again
    changed = main([*toy, '--cfg-options', 'model.decode_head.dropout_ratio=0.1'])
    assert not changed['meta']['init']['seg']['reused']


@pytest.mark.parametrize('flags, message', [
    (['--start', 'warm', '--cfg-options', 'load_from=x.pth'], '--start warm trains the checkpoint'),
    (['--init-seed', '1'], '--init-seed and --init-iters belong to --start warm'),
    (['--start', 'warm', '--init-iters', '0'], 'argument --init-iters: must be a positive integer'),
])
def test_warm_start_flags_are_checked(flags, message, capsys):
    with pytest.raises(SystemExit):
        parse_args(flags)
    assert message in capsys.readouterr().err


def test_warm_start_defaults_are_the_longer_schedules():
    args = parse_args(['--start', 'warm'])
    assert args.iters_of == {task: spec['warm_iters'] for task, spec in TASKS.items()}
    assert args.init_iters_of == {'seg': 800, 'det': 2000} and args.init_seed_of == {'seg': 0, 'det': 2}
    assert parse_args([]).iters_of == {task: spec['iters'] for task, spec in TASKS.items()}
