"""Running the tools in subprocesses and reading what MMEngine logged."""
import json
import os
import os.path as osp
import subprocess
import sys

from tests.conftest import REPO


def run_python(args, cwd, timeout=600):
    """Run ``python ARGS`` with the repository importable; fail with the tail of its output."""
    result = subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout,
                            env={**os.environ, 'PYTHONPATH': REPO})
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return result.stdout + result.stderr


def logged_scalars(work_dir):
    """Every row of ``vis_data/scalars.json`` of every run in ``work_dir``, oldest run first."""
    rows = []
    for run_dir in sorted(os.listdir(work_dir)):
        path = osp.join(work_dir, run_dir, 'vis_data', 'scalars.json')
        if osp.exists(path):
            with open(path) as file:
                rows += [json.loads(line) for line in file]
    return rows
