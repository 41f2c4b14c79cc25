"""Small project configs, running the tools in subprocesses, and reading what MMEngine logged."""
import json
import os
import os.path as osp
import signal
import socket
import subprocess
import sys

from mmengine.config import Config

from ipswap_mm.synthetic.small_run import shrink_det_config, shrink_seg_config
from tests.conftest import DET_SIZE, REPO


def small_seg_config(name: str, voc_root: str, work_dir: str, path: str, iters: int = 4) -> str:
    """The project's segmentation config ``name`` as an ``iters``-iteration CPU run at crop 64
    on ``voc_root``, written to ``path``; returns ``path``."""
    cfg = shrink_seg_config(Config.fromfile(osp.join(REPO, 'configs', name)), voc_root, crop=64, iters=iters,
                            work_dir=work_dir)
    cfg.dump(path)
    return path


def small_det_config(name: str, data_root: str, work_dir: str, path: str) -> str:
    """The project's detection config ``name`` as one epoch at batch 2 on ``data_root`` (images
    of ``DET_SIZE``, kept at their size), written to ``path``; returns ``path``."""
    cfg = shrink_det_config(Config.fromfile(osp.join(REPO, 'configs', name)), data_root,
                            scale=(DET_SIZE[1], DET_SIZE[0]), epochs=1, work_dir=work_dir, batch_size=2)
    cfg.dump(path)
    return path


def free_port() -> int:
    """A TCP port no process listens on now, for a torchrun rendezvous: a fixed port fails when
    another run (a second test session, a leftover process) holds it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(('127.0.0.1', 0))
        return probe.getsockname()[1]


def run_python(args, cwd, timeout=600):
    """Run ``python ARGS`` with the repository importable; fail with the tail of its output.

    It runs in a session of its own: after ``timeout`` seconds the whole session is killed
    (``torchrun`` and its workers alike), and the test fails saying so instead of hanging.
    """
    python_path = os.pathsep.join(filter(None, [REPO, os.environ.get('PYTHONPATH')]))
    process = subprocess.Popen([sys.executable, *args], cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env={**os.environ, 'PYTHONPATH': python_path}, start_new_session=True)
    try:
        stdout, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_session(process)
        stdout, stderr = process.communicate()
        raise AssertionError(f'python {" ".join(args)} did not finish in {timeout} s; killed it\n'
                             + stdout[-3000:] + stderr[-3000:]) from None
    except BaseException:  # pytest-timeout or Ctrl-C interrupting the wait: leave nothing running
        _kill_session(process)
        raise
    assert process.returncode == 0, stdout[-3000:] + stderr[-3000:]
    return stdout + stderr


def _kill_session(process) -> None:
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def logged_scalars(work_dir):
    """Every row of ``vis_data/scalars.json`` of every run in ``work_dir``, oldest run first."""
    rows = []
    for run_dir in sorted(os.listdir(work_dir)):
        path = osp.join(work_dir, run_dir, 'vis_data', 'scalars.json')
        if osp.exists(path):
            with open(path) as file:
                rows += [json.loads(line) for line in file]
    return rows


def single_process_pairs(cfg, scope, epochs, cache_dir):
    """What ``cfg``'s ``IntraClassPairSampler`` pairs in one process (world size 1) with the run's seed
    (``cfg.randomness.seed``): ``({epoch: [(name_a, name_b), ...]}, {name: set of classes})``, images
    named like ``PairRecorderHook`` names them (file name without extension)."""
    import copy

    from mmengine.registry import DATASETS, DefaultScope

    from ipswap_mm.datasets import IntraClassPairSampler
    with DefaultScope.overwrite_default_scope(scope):
        dataset = DATASETS.build(copy.deepcopy(cfg.train_dataloader.dataset))
    options = {key: value for key, value in cfg.train_dataloader.sampler.items() if key not in ('type', '_scope_')}
    sampler = IntraClassPairSampler(dataset, seed=cfg.randomness.seed, cache_dir=cache_dir, **options)
    assert (sampler.rank, sampler.world_size) == (0, 1)
    names = [osp.splitext(osp.basename(dataset.get_data_info(i)['img_path']))[0] for i in range(len(dataset))]
    pairs = {epoch: [(names[a], names[b]) for a, b in sampler.epoch_pairs(epoch).tolist()] for epoch in epochs}
    classes = {}
    for name, class_set in zip(names, sampler.class_index.class_sets):
        classes.setdefault(name, set()).update(class_set)
    return pairs, classes
