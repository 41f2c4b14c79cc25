import json
import os
import shutil
import sys

import pytest

from tools import reproduce
from tools.reproduce import RECIPES, check_recipe, variant_options, write_table

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
    assert capsys.readouterr().out.count('builds (model, training dataloader, a first sample), 32 training '
                                         'images') == 2  # train + aug lists
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


@pytest.mark.parametrize('recipe', ['voc12aug_deeplabv3_r101', 'coco_retinanet', 'voc0712_faster_rcnn'])
def test_check_explains_where_missing_data_goes(recipe, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit, match=r'data was not found \(.+\)\. Put it under data/'):
        check_recipe(recipe)


@pytest.mark.parametrize('recipe', ['voc12aug_deeplabv3_r50', 'coco_mask_rcnn'])
def test_the_ips_block_options_go_to_the_ips_run_only(recipe):
    options = {PATCH: 64, 'custom_hooks.0.loss.temperature': 2.0, 'train_cfg.val_interval': 7}
    split = variant_options(recipe, options)
    assert split == dict(baseline={'train_cfg.val_interval': 7}, ips=options)


def test_a_run_trains_both_with_this_python_and_their_options(tmp_path, monkeypatch):
    commands = []

    def run(command, check, env=None):
        commands.append((command, env))
        work_dir = command[command.index('--work-dir') + 1]
        os.makedirs(work_dir, exist_ok=True)
        if command[0].endswith('dist_train.sh'):
            with open(os.path.join(work_dir, 'last_checkpoint'), 'w') as file:
                file.write(os.path.join(work_dir, 'iter_20000.pth'))
        else:
            with open(command[command.index('--out') + 1], 'w') as file:
                json.dump({'mIoU': 70.0 if 'ips' in work_dir else 69.0}, file)

    monkeypatch.setattr(reproduce.subprocess, 'run', run)
    table = reproduce.run_recipe('voc12aug_deeplabv3_r50', 4, str(tmp_path),
                                 [f'{PATCH}=64', 'train_cfg.val_interval=7'])
    trains = [(command, env) for command, env in commands if command[0].endswith('dist_train.sh')]
    assert [command[2] for command, _ in trains] == ['4', '4']
    assert all(env['PYTHON'] == sys.executable for _, env in trains)
    baseline, ips = (command[command.index('--cfg-options') + 1:] for command, _ in trains)
    assert baseline == ['train_cfg.val_interval=7'] and ips == [f'{PATCH}=64', 'train_cfg.val_interval=7']
    assert '| ips (ipswap_deeplabv3_voc.py) | 70.00 |' in table


def test_table_lists_both_runs_in_percent(tmp_path):
    table = write_table('coco_mask_rcnn', {'baseline': {'coco/bbox_mAP': 0.374, 'coco/segm_mAP': 0.2},
                                           'ips': {'coco/bbox_mAP': 0.371, 'coco/segm_mAP': 0.4}}, str(tmp_path))
    assert '| coco_mask_rcnn | coco/bbox_mAP (%) | coco/segm_mAP (%) |' in table
    assert '| baseline (baseline_mask-rcnn_r50_fpn_1x_coco.py) | 37.4 | 20.0 |' in table
    assert '| ips (ipswap_mask-rcnn_r50_fpn_1x_coco.py) | 37.1 | 40.0 |' in table
    assert (tmp_path / 'results.md').read_text() == table
