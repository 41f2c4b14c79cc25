import json
import os
import shutil
import subprocess
import sys

import pytest

from tools import reproduce
from tools.reproduce import RECIPES, check_recipe, variant_options, write_table

ROOT = reproduce.ROOT
PATCH = 'model.data_preprocessor.batch_augments.0.patch_size'


def test_every_recipe_names_existing_configs():
    for spec in RECIPES.values():
        for variant in ('baseline', 'ips'):
            assert os.path.exists(os.path.join('configs', spec[variant])), spec[variant]


def voc_in_place(voc_root, tmp_path, copy=False):
    (tmp_path / 'data' / 'VOCdevkit').mkdir(parents=True)
    target = tmp_path / 'data' / 'VOCdevkit' / 'VOC2012'
    shutil.copytree(voc_root, target) if copy else os.symlink(voc_root, target)
    return target


def test_check_builds_both_runs_on_data_in_place(voc_root, tmp_path, monkeypatch, capsys):
    voc_in_place(voc_root, tmp_path)
    monkeypatch.chdir(tmp_path)
    check_recipe('voc12aug_deeplabv3_r50', work_root='runs')
    assert capsys.readouterr().out.count('builds (model and custom hooks; training, validation and test '
                                         'dataloaders, a first sample of each), images: train 32, val 4, '
                                         'test 4') == 2  # train + aug lists
    # the IPS run's class index, scanned once by the check, where the run will read it
    assert len(os.listdir(tmp_path / 'runs' / 'voc12aug_deeplabv3_r50' / 'ips' / 'ipswap_cache')) == 1


@pytest.mark.parametrize('folder', ['SegmentationClassAug', 'JPEGImages'])
def test_check_names_missing_files(voc_root, tmp_path, monkeypatch, capsys, folder):
    """The image lists in place, the label maps (images) not: the check says what is missing;
    the baseline run already, through the first sample of the aug list (a ConcatDataset's second part)."""
    shutil.rmtree(voc_in_place(voc_root, tmp_path, copy=True) / folder)
    monkeypatch.chdir(tmp_path)
    detail = (r'.*SegmentationClassAug/\w+\.png.*' if folder == 'SegmentationClassAug'
              else 'missing: data/VOCdevkit/VOC2012/JPEGImages')
    with pytest.raises(SystemExit, match=rf'data was not found \({detail}\)\. Put it under data/'):
        check_recipe('voc12aug_deeplabv3_r50', work_root='runs')
    assert 'builds' not in capsys.readouterr().out


def test_check_reads_the_validation_data_too_and_names_every_data_root_key(voc_root, tmp_path, monkeypatch,
                                                                           capsys):
    """Training data in place, the validation labels (``SegmentationClass``) not: a run would
    fail at its first evaluation; the check fails now, with the keys that point a run at data."""
    shutil.rmtree(voc_in_place(voc_root, tmp_path, copy=True) / 'SegmentationClass')
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit, match='SegmentationClass') as raised:
        check_recipe('voc12aug_deeplabv3_r50', work_root='runs')
    assert 'builds' not in capsys.readouterr().out
    keys = ['train_dataloader.dataset.datasets.0.data_root', 'train_dataloader.dataset.datasets.1.data_root',
            'val_dataloader.dataset.data_root', 'test_dataloader.dataset.data_root']
    assert str(raised.value).endswith('--cfg-options ' + ' '.join(f'{key}=...' for key in keys))


@pytest.mark.parametrize('recipe', ['voc12aug_deeplabv3_r101', 'coco_retinanet', 'voc0712_faster_rcnn'])
def test_check_explains_where_missing_data_goes(recipe, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit, match=r'data was not found \(.+\)\. Put it under data/'):
        check_recipe(recipe)


@pytest.mark.parametrize('recipe', ['voc12aug_deeplabv3_r50', 'coco_mask_rcnn'])
def test_the_ips_block_options_go_to_the_ips_run_only(recipe):
    """Also the options the IPS config leaves at their defaults (compile, pair_key): in the
    baseline run they made a custom_hooks dict the runner rejects and a DefaultSampler argument."""
    options = {PATCH: 64, 'custom_hooks.0.loss.temperature': 2.0, 'custom_hooks.0.loss.compile': False,
               'train_dataloader.sampler.pair_key': 'dominant', 'train_cfg.val_interval': 7}
    split = variant_options(recipe, options)
    assert split == dict(baseline={'train_cfg.val_interval': 7}, ips=options)


def test_check_builds_the_hooks_and_names_a_bad_hook_option(voc_root, tmp_path, monkeypatch):
    voc_in_place(voc_root, tmp_path)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match='PairKLDivLoss.teacher'):
        check_recipe('voc12aug_deeplabv3_r50', {'custom_hooks.0.loss.teacher': 'student'}, work_root='runs')


def record_runs(monkeypatch, metric: str, fail: str = None, fail_test_only: bool = False) -> list:
    """Replace ``subprocess.run`` in reproduce.py: record ``(command, env)``; a training command
    leaves a ``last_checkpoint``, a test command its metrics (``metric``: 70 for IPS, 69 else).
    A command whose work dir ends with ``fail`` (a test command only, with ``fail_test_only``)
    exits with status 1 (a job killed) first."""
    commands = []

    def run(command, check, env=None):
        commands.append((command, env))
        testing = not command[0].endswith(('dist_train.sh', 'slurm_train.sh'))
        if fail and command[command.index('--work-dir') + 1].endswith(fail) and (testing or not fail_test_only):
            raise subprocess.CalledProcessError(1, command)
        training = command[0].endswith(('dist_train.sh', 'slurm_train.sh'))
        work_dir = command[4] if command[0].endswith('slurm_train.sh') else command[command.index('--work-dir') + 1]
        os.makedirs(work_dir, exist_ok=True)
        if training:
            with open(os.path.join(work_dir, 'last_checkpoint'), 'w') as file:
                file.write(os.path.join(work_dir, 'iter_20000.pth'))
        else:
            with open(command[command.index('--metrics') + 1], 'w') as file:
                json.dump({metric: 70.0 if 'ips' in work_dir else 69.0}, file)

    monkeypatch.setattr(reproduce.subprocess, 'run', run)
    return commands


def test_a_run_trains_both_with_this_python_and_their_options(tmp_path, monkeypatch):
    commands = record_runs(monkeypatch, 'mIoU')
    table = reproduce.run_recipe('voc12aug_deeplabv3_r50', 4, str(tmp_path),
                                 [f'{PATCH}=64', 'train_cfg.val_interval=7'])
    trains = [(command, env) for command, env in commands if command[0].endswith('dist_train.sh')]
    assert [command[2] for command, _ in trains] == ['4', '4']
    assert all(env['PYTHON'] == sys.executable for _, env in trains)
    baseline, ips = (command[command.index('--cfg-options') + 1:] for command, _ in trains)
    assert baseline == ['train_cfg.val_interval=7'] and ips == [f'{PATCH}=64', 'train_cfg.val_interval=7']
    assert '| ips (ipswap_deeplabv3_voc.py) | 70.00 |' in table


def test_the_same_command_again_continues_where_a_run_stopped(tmp_path, monkeypatch):
    """The IPS run's job dies: the command stops saying so; again, the baseline (tested) is not
    run again and the IPS run trains with --resume; a third time runs nothing."""
    record_runs(monkeypatch, 'mIoU', fail='ips')
    with pytest.raises(SystemExit, match=r'voc12aug_deeplabv3_r50 ips: training failed \(exit status 1\); its log '
                                         r'is under .*ips\. The same command again continues'):
        reproduce.run_recipe('voc12aug_deeplabv3_r50', 4, str(tmp_path), [f'{PATCH}=64'])
    commands = record_runs(monkeypatch, 'mIoU')
    table = reproduce.run_recipe('voc12aug_deeplabv3_r50', 4, str(tmp_path), [f'{PATCH}=64'])
    (train, _), (test, _) = commands
    assert train[0].endswith('dist_train.sh') and train[4].endswith('ips') and '--resume' in train
    assert test[1].endswith('test.py') and test[3].endswith(os.path.join('ips', 'iter_20000.pth'))
    assert '| baseline (baseline_deeplabv3_voc.py) | 69.00 |' in table
    assert '| ips (ipswap_deeplabv3_voc.py) | 70.00 |' in table
    commands = record_runs(monkeypatch, 'mIoU')
    assert reproduce.run_recipe('voc12aug_deeplabv3_r50', 4, str(tmp_path), [f'{PATCH}=64']) == table
    assert commands == []
    # a later checkpoint than the run's record knows (trained on by hand): resumed, then tested again
    (tmp_path / 'voc12aug_deeplabv3_r50' / 'ips' / 'last_checkpoint').write_text('iter_40000.pth')
    reproduce.run_recipe('voc12aug_deeplabv3_r50', 4, str(tmp_path), [f'{PATCH}=64'])
    assert [command[4] for command, _ in commands if command[0].endswith('dist_train.sh')] == \
        [str(tmp_path / 'voc12aug_deeplabv3_r50' / 'ips')]


def test_a_run_whose_test_failed_is_tested_again_not_trained(tmp_path, monkeypatch):
    """Training ended, its test failed (out of memory, a missing ann_file): again, only the test
    runs (a resume of a finished run would load every trained batch to skip it)."""
    commands = record_runs(monkeypatch, 'mIoU', fail='ips', fail_test_only=True)
    with pytest.raises(SystemExit, match=r'ips: testing .*iter_20000\.pth failed'):
        reproduce.run_recipe('voc12aug_deeplabv3_r50', 4, str(tmp_path), [])
    assert [command[0].endswith('dist_train.sh') for command, _ in commands] == [True, False, True, False]
    commands = record_runs(monkeypatch, 'mIoU')
    reproduce.run_recipe('voc12aug_deeplabv3_r50', 4, str(tmp_path), [])
    assert len(commands) == 1 and commands[0][0][1].endswith('test.py') and 'ips' in commands[0][0][3]


def test_a_record_cut_short_names_its_file_and_what_to_write(tmp_path, monkeypatch):
    record_runs(monkeypatch, 'mIoU', fail='ips')
    with pytest.raises(SystemExit, match='training failed'):
        reproduce.run_recipe('voc12aug_deeplabv3_r50', 4, str(tmp_path), [])
    record = tmp_path / 'voc12aug_deeplabv3_r50' / 'ips' / 'reproduce_run.json'
    settings = json.loads(record.read_text())
    record.write_text('{"config": "ipswap_deep')  # a write cut short
    commands = record_runs(monkeypatch, 'mIoU')
    with pytest.raises(SystemExit, match='reproduce_run.json is no JSON') as raised:
        reproduce.run_recipe('voc12aug_deeplabv3_r50', 4, str(tmp_path), [])
    assert json.dumps(settings) in str(raised.value) and commands == []


@pytest.mark.parametrize('options, gpus, differ', [([f'{PATCH}=32'], 4, "cfg_options ['model.data_preprocessor"),
                                                   ([f'{PATCH}=64'], 8, 'gpus 4 there, 8 now')])
def test_a_run_is_not_continued_under_other_settings(tmp_path, monkeypatch, options, gpus, differ):
    record_runs(monkeypatch, 'mIoU', fail='ips')
    with pytest.raises(SystemExit, match='training failed'):
        reproduce.run_recipe('voc12aug_deeplabv3_r50', 4, str(tmp_path), [f'{PATCH}=64'])
    commands = record_runs(monkeypatch, 'mIoU')
    with pytest.raises(SystemExit, match='holds a run started with other settings') as raised:
        reproduce.run_recipe('voc12aug_deeplabv3_r50', gpus, str(tmp_path), options)
    assert differ in str(raised.value) and 'reproduce_run.json' in str(raised.value)
    assert commands == []  # nothing started, the baseline's run neither


def test_a_work_dir_with_a_run_it_did_not_start_is_not_continued(tmp_path, monkeypatch):
    work_dir = tmp_path / 'coco_retinanet' / 'baseline'
    work_dir.mkdir(parents=True)
    (work_dir / 'last_checkpoint').write_text(str(work_dir / 'epoch_3.pth'))
    commands = record_runs(monkeypatch, 'coco/bbox_mAP')
    with pytest.raises(SystemExit, match='with no .*reproduce_run.json .*settings are unknown.*write {"config": '
                                         r'"baseline_retinanet_r50_fpn_1x_coco.py", "cfg_options": \[\], "gpus": 8}'):
        reproduce.run_recipe('coco_retinanet', 8, str(tmp_path), [])
    assert commands == []


def test_table_lists_both_runs_in_percent(tmp_path):
    table = write_table('coco_mask_rcnn', {'baseline': {'coco/bbox_mAP': 0.374, 'coco/segm_mAP': 0.2},
                                           'ips': {'coco/bbox_mAP': 0.371, 'coco/segm_mAP': 0.4}}, str(tmp_path))
    assert '| coco_mask_rcnn | coco/bbox_mAP (%) | coco/segm_mAP (%) |' in table
    assert '| baseline (baseline_mask-rcnn_r50_fpn_1x_coco.py) | 37.4 | 20.0 |' in table
    assert '| ips (ipswap_mask-rcnn_r50_fpn_1x_coco.py) | 37.1 | 40.0 |' in table
    assert (tmp_path / 'results.md').read_text() == table


def test_a_slurm_run_trains_on_the_gpus_and_tests_on_one(tmp_path, monkeypatch):
    commands = record_runs(monkeypatch, 'coco/bbox_mAP')
    monkeypatch.setenv('GPUS_PER_NODE', '8')  # as people export it for the stock scripts
    reproduce.run_recipe('coco_retinanet', 4, str(tmp_path), [], slurm_partition='gpu')
    names = [os.path.basename(command[0]) for command, _ in commands]
    assert names == ['slurm_train.sh', 'slurm_test.sh'] * 2
    (train, train_env), (test, test_env) = commands[2:]
    assert train[1:3] == ['gpu', 'ips-coco_retinanet-ips'] and train[4] == str(tmp_path / 'coco_retinanet' / 'ips')
    assert (train_env['GPUS'], train_env['GPUS_PER_NODE'], test_env['GPUS'], test_env['GPUS_PER_NODE']) == \
        ('4', '4', '1', '1')
    assert train_env['PYTHON'] == sys.executable
    assert test[4] == str(tmp_path / 'coco_retinanet' / 'ips' / 'iter_20000.pth')


@pytest.mark.parametrize('gpus, per_node', [('4', '4'), ('16', '8')])
@pytest.mark.parametrize('script, tool', [('slurm_train.sh', 'train.py'), ('slurm_test.sh', 'test.py')])
def test_slurm_scripts_start_the_tool_through_srun(tmp_path, gpus, per_node, script, tool):
    """The scripts as a cluster runs them, with an ``srun`` on PATH that records its arguments."""
    record = tmp_path / 'srun_args'
    (tmp_path / 'srun').write_text(f'#!/usr/bin/env bash\nprintf "%s\\n" "$@" > {record}\n')
    (tmp_path / 'srun').chmod(0o755)
    env = dict(os.environ, PATH=f'{tmp_path}:{os.environ["PATH"]}', GPUS=gpus, PYTHON='/opt/py/bin/python',
               SRUN_ARGS='--time=10 --qos=high')
    subprocess.run([os.path.join(ROOT, 'tools', script), 'part', 'job', 'my config.py', 'second arg',
                    '--cfg-options', 'a=1'], check=True, env=env)
    args = record.read_text().splitlines()
    assert args[:8] == ['-p', 'part', '--job-name=job', f'--gres=gpu:{per_node}', f'--ntasks={gpus}',
                        f'--ntasks-per-node={per_node}', '--cpus-per-task=5', '--kill-on-bad-exit=1']
    assert args[8:10] == ['--time=10', '--qos=high']
    third = '--work-dir=second arg' if tool == 'train.py' else 'second arg'
    assert args[10:] == ['/opt/py/bin/python', '-u', os.path.join(ROOT, 'tools', tool), 'my config.py', third,
                         '--launcher=slurm', '--cfg-options', 'a=1']


@pytest.mark.parametrize('args', [['part', 'job', 'cfg.py', '--amp'], ['part', 'job', 'cfg.py']])
def test_slurm_train_without_a_work_dir_says_so_before_srun(tmp_path, args):
    """MMSegmentation's stock script takes no WORK_DIR: an --amp in its place was taken for one."""
    (tmp_path / 'srun').write_text(f'#!/usr/bin/env bash\ntouch {tmp_path / "ran"}\n')
    (tmp_path / 'srun').chmod(0o755)
    result = subprocess.run([os.path.join(ROOT, 'tools', 'slurm_train.sh'), *args], capture_output=True, text=True,
                            env=dict(os.environ, PATH=f'{tmp_path}:{os.environ["PATH"]}'))
    assert result.returncode == 2 and 'WORK_DIR is required' in result.stderr
    assert not (tmp_path / 'ran').exists()


def test_data_root_keys_name_each_evaluator_of_a_list_as_cfg_options_reaches_it():
    from mmengine.config import Config

    from ipswap_mm.engine.config_walk import data_root_keys
    cfg = Config(dict(val_dataloader=dict(dataset=dict(type='CocoDataset', data_root='data/coco/')),
                      val_evaluator=[dict(type='IoUMetric'), dict(type='CocoMetric', ann_file='a.json')],
                      test_evaluator=dict(type='CocoMetric', ann_file='b.json')))
    keys = data_root_keys(cfg, ('train_dataloader', 'val_dataloader', 'test_dataloader'))
    assert keys == ['val_dataloader.dataset.data_root', 'val_evaluator.1.ann_file', 'test_evaluator.ann_file']
    cfg.merge_from_dict({key: 'elsewhere' for key in keys})
    assert cfg.val_evaluator[1].ann_file == cfg.test_evaluator.ann_file == 'elsewhere'
    assert cfg.val_evaluator[0] == dict(type='IoUMetric')


def test_a_failed_test_of_a_later_checkpoint_is_not_recorded_as_tested(tmp_path, monkeypatch):
    """Tested at iter_20000; its training then went on to iter_40000, whose test fails: the
    iter_20000 metrics must not pass for iter_40000's; the next command tests again."""
    record_runs(monkeypatch, 'mIoU')
    reproduce.run_recipe('voc12aug_deeplabv3_r50', 4, str(tmp_path), [])
    ips = tmp_path / 'voc12aug_deeplabv3_r50' / 'ips'
    (ips / 'last_checkpoint').write_text(str(ips / 'iter_40000.pth'))
    record = json.loads((ips / 'reproduce_run.json').read_text())
    (ips / 'reproduce_run.json').write_text(json.dumps(dict(record, trained_checkpoint=str(ips / 'iter_40000.pth'))))
    record_runs(monkeypatch, 'mIoU', fail='ips', fail_test_only=True)
    with pytest.raises(SystemExit, match='testing .*iter_40000.pth failed'):
        reproduce.run_recipe('voc12aug_deeplabv3_r50', 4, str(tmp_path), [])
    commands = record_runs(monkeypatch, 'mIoU')
    reproduce.run_recipe('voc12aug_deeplabv3_r50', 4, str(tmp_path), [])
    assert [command[1].endswith('test.py') for command, _ in commands] == [True]


def test_a_run_whose_metrics_file_is_gone_is_tested_again(tmp_path, monkeypatch):
    record_runs(monkeypatch, 'mIoU')
    reproduce.run_recipe('voc12aug_deeplabv3_r50', 4, str(tmp_path), [])
    (tmp_path / 'voc12aug_deeplabv3_r50' / 'ips' / 'test_metrics.json').unlink()
    commands = record_runs(monkeypatch, 'mIoU')
    table = reproduce.run_recipe('voc12aug_deeplabv3_r50', 4, str(tmp_path), [])
    assert len(commands) == 1 and commands[0][0][1].endswith('test.py') and '| ips' in table


def test_a_last_checkpoint_file_written_by_hand_with_a_newline_is_read(tmp_path):
    (tmp_path / 'last_checkpoint').write_text('/runs/iter_8.pth\n')  # echo'd by hand
    assert reproduce.RunRecord(str(tmp_path), 'c.py', [], 4).latest_checkpoint() == '/runs/iter_8.pth'


def test_an_update_cut_short_keeps_the_old_record(tmp_path, monkeypatch):
    record = reproduce.RunRecord(str(tmp_path), 'c.py', [], 4)
    record.start()

    def torn(obj, file, **kwargs):
        file.write('{"config": ')
        raise OSError('No space left on device')
    monkeypatch.setattr(reproduce.json, 'dump', torn)
    with pytest.raises(OSError):
        record.update(trained_checkpoint='iter_8.pth')
    assert json.loads((tmp_path / 'reproduce_run.json').read_text()) == dict(config='c.py', cfg_options=[], gpus=4)


def test_other_settings_stop_the_recipe_before_its_baseline_runs(tmp_path, monkeypatch):
    """Both tested; the baseline trained on by hand (needs a resume); an IPS-only option
    changed: nothing may run, the baseline neither."""
    record_runs(monkeypatch, 'mIoU')
    reproduce.run_recipe('voc12aug_deeplabv3_r50', 4, str(tmp_path), [f'{PATCH}=64'])
    baseline = tmp_path / 'voc12aug_deeplabv3_r50' / 'baseline'
    (baseline / 'last_checkpoint').write_text(str(baseline / 'iter_40000.pth'))
    commands = record_runs(monkeypatch, 'mIoU')
    with pytest.raises(SystemExit, match='other settings'):
        reproduce.run_recipe('voc12aug_deeplabv3_r50', 4, str(tmp_path), [f'{PATCH}=32'])
    assert commands == []


def test_a_training_that_wrote_no_checkpoint_stops_the_recipe(tmp_path, monkeypatch):
    commands = []

    def run(command, check, env=None):  # every command "succeeds", training writes nothing
        commands.append(command)
    monkeypatch.setattr(reproduce.subprocess, 'run', run)
    with pytest.raises(SystemExit, match='training wrote no .*last_checkpoint'):
        reproduce.run_recipe('voc12aug_deeplabv3_r50', 4, str(tmp_path), [])
    assert len(commands) == 1


@pytest.mark.parametrize('text', ['null', '[]', '"run"'])
def test_a_record_that_is_no_json_object_names_its_file(tmp_path, text):
    (tmp_path / 'reproduce_run.json').write_text(text)
    with pytest.raises(SystemExit, match='reproduce_run.json is no JSON record'):
        reproduce.RunRecord(str(tmp_path), 'c.py', [], 4)


@pytest.mark.parametrize('argv, message', [
    (['--cfg-options', 'randomness.seed=1', 'coco_retinanet'], 'name a recipe'),  # the recipe taken as an option
    (['--check'], 'name a recipe'),
    (['coco_retinanet', '--check', '--cfg-options', 'randomness.seed'], 'key=value items; got randomness.seed'),
    (['coco_retinanet', '--gpus', '0'], 'must be a positive integer'),
])
def test_a_command_that_would_do_nothing_or_something_else_stops(monkeypatch, capsys, argv, message):
    monkeypatch.setattr(sys, 'argv', ['reproduce.py', *argv])
    with pytest.raises(SystemExit) as stopped:
        reproduce.main()
    assert stopped.value.code != 0 and message in str(stopped.value.code) + capsys.readouterr().err


@pytest.mark.parametrize('script, usage', [
    ('dist_train.sh', 'CONFIG NUM_PROCESSES'), ('dist_test.sh', 'CONFIG CHECKPOINT NUM_PROCESSES'),
    ('dist_run.sh', 'TOOL NUM_PROCESSES'), ('slurm_test.sh', 'PARTITION JOB_NAME CONFIG CHECKPOINT'),
    ('slurm_run.sh', 'PARTITION JOB_NAME TOOL'), ('slurm_train.sh', 'PARTITION JOB_NAME CONFIG WORK_DIR'),
])
def test_a_launch_script_missing_arguments_prints_its_usage(script, usage):
    result = subprocess.run(['bash', os.path.join(ROOT, 'tools', script), 'configs/ipswap_deeplabv3_voc.py'],
                            capture_output=True, text=True)
    assert result.returncode == 2 and 'usage: ' in result.stderr and usage in result.stderr
