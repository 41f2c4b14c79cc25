"""tools/test.py: the stock test tools' options, for both task families."""
import os.path as osp

import pytest
from mmengine.config import Config

from tests.conftest import REPO
from tools.test import apply_test_options, main, parse_args

DET = osp.join(REPO, 'configs', 'ipswap_retinanet_r50_fpn_1x_coco.py')
SEG = osp.join(REPO, 'configs', 'ipswap_deeplabv3_voc.py')


def options(config, *extra):
    return apply_test_options(Config.fromfile(config), parse_args([config, 'model.pth', *extra]))


def test_show_dir_goes_where_each_stock_tool_puts_it():
    det = options(DET, '--show-dir', 'painted', '--show', '--wait-time', '0.5')
    assert det.default_hooks.visualization.test_out_dir == 'painted'
    assert det.default_hooks.visualization.draw and det.default_hooks.visualization.wait_time == 0.5
    seg = options(SEG, '--show-dir', 'painted')
    assert seg.visualizer.save_dir == 'painted' and seg.default_hooks.visualization.draw


def test_out_is_a_folder_of_label_maps_for_segmentation():
    seg = options(SEG, '--out', 'predictions')
    assert seg.test_evaluator.output_dir == 'predictions' and seg.test_evaluator.keep_results


def test_tta_wraps_the_model_or_names_what_the_config_lacks():
    seg = options(SEG, '--tta')
    assert seg.model.type == 'SegTTAModel' and seg.model.module.type == 'EncoderDecoder'
    assert seg.test_dataloader.dataset.pipeline == seg.tta_pipeline
    with pytest.raises(ValueError, match='--tta needs tta_model and tta_pipeline'):
        options(osp.join(REPO, 'configs', 'ipswap_faster-rcnn_r50_fpn_voc0712.py'), '--tta')


def test_detections_are_dumped_to_a_pickle_and_metrics_to_a_named_file():
    with pytest.raises(SystemExit, match=r'--out preds.json: MMDetection dumps the predictions to a \.pkl'):
        main([DET, 'model.pth', '--out', 'preds.json'])
    with pytest.raises(SystemExit):  # argparse: --metrics must name a .json, .pkl or .yaml file
        parse_args([DET, 'model.pth', '--metrics', 'metrics_dir'])
