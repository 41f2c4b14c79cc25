"""The Makefile's install step, run with a stand-in interpreter that logs what it is asked to do."""
import os
import shutil
import subprocess
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

FAKE_PYTHON = '''#!/bin/sh
echo "$*" >> "$(dirname "$0")/calls.log"
if [ "$1" = "-c" ] && [ -e "$(dirname "$0")/mmcv_ops_broken" ]; then
  case "$2" in *get_compiling_cuda_version*) exit 1;; esac
fi
exit 0
'''


@pytest.fixture
def checkout(tmp_path):
    if shutil.which('make') is None:
        pytest.fail('make is needed to install this project')
    for name in ('Makefile', 'setup.py'):
        shutil.copy(os.path.join(REPO, name), tmp_path)
    shutil.copytree(os.path.join(REPO, 'requirements'), tmp_path / 'requirements')
    python = tmp_path / 'python'
    python.write_text(FAKE_PYTHON)
    python.chmod(0o755)
    return tmp_path


def install(checkout, *args):
    (checkout / 'calls.log').write_text('')
    subprocess.run(['make', '-s', 'install', f'PY={checkout / "python"}', *args], cwd=checkout, check=True,
                   capture_output=True)
    return (checkout / 'calls.log').read_text().splitlines()


def test_install_runs_once_per_torch_build(checkout):
    first = install(checkout)
    assert '-m pip install -q torch==2.13.0 -r requirements/build.txt' in first
    assert not any('--force-reinstall' in call for call in first)
    assert install(checkout) == []  # installed: nothing to do
    time.sleep(1.1)  # a new mtime for the recorded TORCH
    cuda = 'torch==2.13.0 --extra-index-url https://example.invalid/cu121'  # the same version, another build
    switched = install(checkout, f'TORCH={cuda}')
    # pip would keep the installed torch 2.13.0 (+cpu) as it is: installed over it
    assert switched.index(f'-m pip install -q --force-reinstall --no-deps {cuda}') \
        < switched.index(f'-m pip install -q {cuda} -r requirements/build.txt')
    assert not any('requirements/mmcv.txt' in call and '--force-reinstall' in call for call in switched)  # ops fit
    assert install(checkout, f'TORCH={cuda}') == []


def test_mmcv_built_for_another_torch_is_rebuilt(checkout):
    (checkout / 'mmcv_ops_broken').write_text('')
    calls = install(checkout)
    rebuild = [call for call in calls if '--force-reinstall' in call]
    assert rebuild == ['-m pip install -q --no-build-isolation --force-reinstall --no-deps -r requirements/mmcv.txt']
    assert calls.index('-m pip cache remove mmcv') < calls.index(rebuild[0])
