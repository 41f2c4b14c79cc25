import os

import pytest

from tools.reproduce import RECIPES, check_recipe, write_table


def test_every_recipe_names_existing_configs():
    for spec in RECIPES.values():
        for variant in ('baseline', 'ips'):
            assert os.path.exists(os.path.join('configs', spec[variant])), spec[variant]


def test_check_builds_both_configs_on_data_in_place(voc_root, tmp_path, monkeypatch, capsys):
    (tmp_path / 'data' / 'VOCdevkit').mkdir(parents=True)
    os.symlink(voc_root, tmp_path / 'data' / 'VOCdevkit' / 'VOC2012')
    monkeypatch.chdir(tmp_path)
    check_recipe('voc12aug_deeplabv3_r50')
    assert capsys.readouterr().out.count('builds, 32 training images') == 2  # train + aug lists


@pytest.mark.parametrize('recipe', ['voc12aug_deeplabv3_r101', 'coco_retinanet', 'voc0712_faster_rcnn'])
def test_check_explains_where_missing_data_goes(recipe, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit, match=r'data was not found .* Put it under data/'):
        check_recipe(recipe)


def test_table_lists_both_runs(tmp_path):
    table = write_table('coco_mask_rcnn', {'baseline': {'coco/bbox_mAP': 0.1, 'coco/segm_mAP': 0.2},
                                           'ips': {'coco/bbox_mAP': 0.3, 'coco/segm_mAP': 0.4}}, str(tmp_path))
    assert '| ips (ipswap_mask-rcnn_r50_fpn_1x_coco.py) | 0.30 | 0.40 |' in table
    assert (tmp_path / 'results.md').read_text() == table
