import os.path as osp

from mmengine.config import Config

from ipswap_mm.engine.launch import apply_resume


def config(work_dir, **fields):
    return Config(dict(work_dir=str(work_dir), resume=False, **fields))


def test_resume_auto_continues_from_the_latest_checkpoint(tmp_path):
    (tmp_path / 'iter_8.pth').write_bytes(b'')
    (tmp_path / 'last_checkpoint').write_text(str(tmp_path / 'iter_8.pth'))
    cfg = config(tmp_path, load_from='pretrained.pth')
    apply_resume(cfg, 'auto')
    assert cfg.resume is True and cfg.load_from is None  # MMEngine finds iter_8.pth


def test_resume_auto_without_a_checkpoint_keeps_load_from(tmp_path):
    """A preemptible job's first launch: nothing to resume, the pretrained weights still load."""
    cfg = config(tmp_path, load_from='pretrained.pth')
    apply_resume(cfg, 'auto')
    assert cfg.resume is False and cfg.load_from == 'pretrained.pth'


def test_resume_from_a_named_checkpoint(tmp_path):
    cfg = config(tmp_path, load_from='pretrained.pth')
    apply_resume(cfg, osp.join('run', 'iter_4.pth'))
    assert cfg.resume is True and cfg.load_from == osp.join('run', 'iter_4.pth')
    unchanged = config(tmp_path, load_from='pretrained.pth')
    apply_resume(unchanged, None)
    assert unchanged.resume is False and unchanged.load_from == 'pretrained.pth'
