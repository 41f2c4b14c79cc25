"""The Makefile's install step, run with a stand-in interpreter that logs what it is asked to do."""
import os
import shutil
import subprocess
import time

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# Marker files steer it: mmcv_ops_broken (the ops check fails until mmcv is rebuilt),
# mmcv_stays_broken (a rebuild does not mend it), mmcv_install_fails (installing mmcv fails).
FAKE_PYTHON = '''#!/bin/sh
here="$(dirname "$0")"
echo "$*" >> "$here/calls.log"
case "$*" in *requirements/mmcv.txt*)
  [ -e "$here/mmcv_install_fails" ] && exit 2
  case "$*" in *--force-reinstall*) [ -e "$here/mmcv_stays_broken" ] || rm -f "$here/mmcv_ops_broken";; esac;;
esac
if [ "$1" = "-c" ] && [ -e "$here/mmcv_ops_broken" ]; then
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
    (tmp_path / 'ipswap_mm').mkdir()
    shutil.copy(os.path.join(REPO, 'ipswap_mm', 'version.py'), tmp_path / 'ipswap_mm')
    shutil.copytree(os.path.join(REPO, 'requirements'), tmp_path / 'requirements')
    python = tmp_path / 'python'
    python.write_text(FAKE_PYTHON)
    python.chmod(0o755)
    return tmp_path


def install(checkout, *args, succeeds=True):
    (checkout / 'calls.log').write_text('')
    result = subprocess.run(['make', '-s', 'install', f'PY={checkout / "python"}', *args], cwd=checkout,
                            capture_output=True)
    assert (result.returncode == 0) == succeeds, result.stderr
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
    assert calls[-1].startswith('-c import mmcv.ops, mmseg, mmdet, ipswap_mm')  # then installed
    assert (checkout / '.venv' / '.ipswap_mm-installed').read_text().strip() == 'torch==2.13.0'


def test_a_rebuild_that_does_not_mend_mmcv_fails_and_claims_nothing(checkout):
    (checkout / 'mmcv_ops_broken').write_text('')
    (checkout / 'mmcv_stays_broken').write_text('')
    calls = install(checkout, succeeds=False)
    assert calls[-1].startswith('-c import torch, mmcv.ops')  # checked again after the rebuild, and stopped
    assert not (checkout / '.venv' / '.ipswap_mm-installed').exists()


def test_a_switch_of_torch_that_fails_later_is_undone_by_the_next_install(checkout):
    """The other build is installed, then mmcv fails (an interrupted rebuild, say): the next
    plain install must put the default build back over it, as pip would keep the other."""
    install(checkout)
    time.sleep(1.1)
    cuda = 'torch==2.13.0 --extra-index-url https://example.invalid/cu121'
    (checkout / 'mmcv_install_fails').write_text('')
    assert f'-m pip install -q --force-reinstall --no-deps {cuda}' in install(checkout, f'TORCH={cuda}',
                                                                              succeeds=False)
    (checkout / 'mmcv_install_fails').unlink()
    time.sleep(1.1)
    assert '-m pip install -q --force-reinstall --no-deps torch==2.13.0' in install(checkout)


def test_a_venv_of_an_older_makefile_whose_stamp_names_no_torch_gets_the_one_asked_for(checkout):
    """An empty stamp (the Makefile of before the TORCH record touched it): which build is
    installed is unknown, so the asked one is installed over it."""
    install(checkout)
    (checkout / '.venv' / '.ipswap_mm-torch-installed').unlink()
    (checkout / '.venv' / '.ipswap_mm-installed').write_text('')
    time.sleep(1.1)
    cuda = 'torch==2.13.0 --extra-index-url https://example.invalid/cu121'
    assert f'-m pip install -q --force-reinstall --no-deps {cuda}' in install(checkout, f'TORCH={cuda}')
