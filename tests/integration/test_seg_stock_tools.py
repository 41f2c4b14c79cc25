"""Stock MMSegmentation tools on the project's configs, on generated VOC data, on the CPU."""
import os
import os.path as osp
import subprocess
import sys

import mmseg
import pytest
import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS

from tests.conftest import REPO
from tests.integration.helpers import free_port, logged_scalars, run_python, small_seg_config

STOCK_TOOLS = osp.join(osp.dirname(mmseg.__file__), '.mim', 'tools')
ITERS = 4


@pytest.fixture(scope='module')
def trained(voc_root, tmp_path_factory):
    tmp = tmp_path_factory.mktemp('seg_run')
    work_dir = str(tmp / 'ips')
    config = small_seg_config('ipswap_deeplabv3_voc.py', voc_root, work_dir, str(tmp / 'ips_cfg.py'), ITERS)
    run_python([osp.join(STOCK_TOOLS, 'train.py'), config, '--work-dir', work_dir], cwd=str(tmp))
    return tmp, config, work_dir, osp.join(work_dir, f'iter_{ITERS}.pth')


def test_stock_train_logs_the_pair_loss(trained):
    _, _, work_dir, checkpoint = trained
    assert osp.exists(checkpoint)
    logged = [row for row in logged_scalars(work_dir) if 'loss' in row]
    assert logged and all('loss_ips_kl' in row and 'decode.loss_ce' in row for row in logged)
    assert all(torch.isfinite(torch.tensor(row['loss_ips_kl'])) for row in logged)
    assert os.listdir(osp.join(work_dir, 'ipswap_cache'))  # the class index was cached in the work dir


def test_stock_test_evaluates_the_ips_checkpoint(trained):
    tmp, config, _, checkpoint = trained
    output = run_python([osp.join(STOCK_TOOLS, 'test.py'), config, checkpoint, '--work-dir', str(tmp / 'test')],
                 cwd=str(tmp))
    assert 'mIoU' in output


def test_project_test_takes_the_stock_options_and_writes_the_metrics(trained):
    """tools/test.py as MMSegmentation's: --out a folder of predicted label maps, --show-dir
    painted predictions; and --metrics, the metrics as JSON."""
    import glob
    import json
    tmp, config, _, checkpoint = trained
    out, metrics = tmp / 'predictions', tmp / 'metrics.json'
    run_python([osp.join(REPO, 'tools', 'test.py'), config, checkpoint, '--work-dir', str(tmp / 'project_test'),
                '--out', str(out), '--metrics', str(metrics), '--show-dir', str(tmp / 'painted'),
                '--cfg-options', 'default_hooks.visualization.interval=1'], cwd=str(tmp))  # every image painted
    assert 0 <= json.loads(metrics.read_text())['mIoU'] <= 100
    assert len(os.listdir(out)) == 4  # one label map per validation image
    assert len(glob.glob(str(tmp / 'painted' / '**' / '*.png'), recursive=True)) == 4


@pytest.mark.timeout(300)
def test_dist_test_evaluates_in_two_processes(trained):
    """``tools/dist_test.sh CONFIG CHECKPOINT 2``: torchrun, gloo on the CPU, one mIoU."""
    tmp, config, _, checkpoint = trained
    result = subprocess.run(['bash', osp.join(REPO, 'tools', 'dist_test.sh'), config, checkpoint, '2', '--work-dir',
                             str(tmp / 'dist_test')], cwd=str(tmp), capture_output=True, text=True, timeout=280,
                            env={**os.environ, 'PYTHON': sys.executable, 'PORT': str(free_port())})
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    assert 'Distributed training: True' in output and 'GPU number: 2' in output  # MMEngine's world size
    assert output.count('per class results:') == 1  # one table: the ranks' results gathered, reported once


def test_checkpoint_loads_into_the_baseline_config(trained, voc_root):
    tmp, _, _, checkpoint = trained
    baseline = small_seg_config('baseline_deeplabv3_voc.py', voc_root, str(tmp / 'base'), str(tmp / 'base_cfg.py'),
                                ITERS)
    init_default_scope('mmseg')
    model = MODELS.build(Config.fromfile(baseline).model)
    state = torch.load(checkpoint, map_location='cpu', weights_only=True)['state_dict']
    result = model.load_state_dict(state, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    output = run_python([osp.join(STOCK_TOOLS, 'test.py'), baseline, checkpoint, '--work-dir', str(tmp / 'base_test')],
                 cwd=str(tmp))
    assert 'mIoU' in output


def test_project_train_resumes(trained):
    tmp, config, work_dir, _ = trained
    output = run_python([osp.join(REPO, 'tools', 'train.py'), config, '--work-dir', work_dir, '--resume',
                  '--cfg-options', f'train_cfg.max_iters={ITERS + 2}'], cwd=str(tmp))
    assert f'resumed epoch: 0, iter: {ITERS}' in output
    assert osp.exists(osp.join(work_dir, f'iter_{ITERS + 2}.pth'))


def test_stock_train_resumes_from_an_ips_checkpoint(trained):
    # Under torch >= 2.6 the stock --resume fails on plain MMEngine checkpoints; IPS ones are weights-only safe.
    tmp, config, _, checkpoint = trained
    work_dir = tmp / 'stock_resume'
    work_dir.mkdir()
    (work_dir / 'last_checkpoint').write_text(checkpoint)
    output = run_python([osp.join(STOCK_TOOLS, 'train.py'), config, '--work-dir', str(work_dir), '--resume',
                         '--cfg-options', f'train_cfg.max_iters={ITERS + 1}'], cwd=str(tmp))
    assert f'resumed epoch: 0, iter: {ITERS}' in output
    assert osp.exists(osp.join(work_dir, f'iter_{ITERS + 1}.pth'))
