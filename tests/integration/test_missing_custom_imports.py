"""A config with the IPS keys but without ``custom_imports`` fails naming the unknown type."""
import os.path as osp
import subprocess
import sys

from tests.conftest import REPO

SCRIPT = """
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmseg.registry import MODELS
cfg = Config.fromfile({config!r})
init_default_scope('mmseg')
MODELS.build(cfg.model.data_preprocessor)
"""


def test_without_custom_imports_the_error_names_the_type(tmp_path):
    config = tmp_path / 'no_imports.py'
    text = open(osp.join(REPO, 'configs', 'ipswap_deeplabv3_voc.py')).read()
    config.write_text(text.replace("custom_imports = dict(imports=['ipswap_mm'], allow_failed_imports=False)", ''))
    result = subprocess.run([sys.executable, '-c', SCRIPT.format(config=str(config))], capture_output=True, text=True,
                            timeout=300, cwd=str(tmp_path))
    assert result.returncode != 0
    assert 'BatchAugSegDataPreProcessor is not in the' in result.stderr
