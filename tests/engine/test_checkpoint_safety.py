import io
import math
import pickle
import zipfile

import numpy as np
import pytest
import torch
from mmengine.logging import HistoryBuffer

from ipswap_mm.engine.checkpoint_safety import (
    make_weights_only_safe,
    restore_history_buffers,
    trusted_checkpoint_globals,
)


def mmengine_checkpoint() -> dict:
    """What an MMEngine 0.10.7 checkpoint holds besides tensors: history buffers, NumPy values."""
    buffer = HistoryBuffer()
    buffer.update(0.5, 2)
    buffer.update(0.25)
    return dict(meta=dict(seed=3, epoch=np.int64(1), dataset_meta=dict(palette=np.zeros((2, 3)))),
                state_dict=dict(weight=torch.ones(2)),
                message_hub=dict(log_scalars={'train/loss': buffer}, runtime_info=dict(iter=np.int64(6))))


def same_history(buffer, expected: HistoryBuffer) -> bool:
    return (isinstance(buffer, HistoryBuffer) and buffer.max_length == expected.max_length
            and buffer._log_history.tolist() == expected._log_history.tolist()
            and buffer._count_history.tolist() == expected._count_history.tolist())


def saved(checkpoint: dict, numpy_module: str = None) -> io.BytesIO:
    """``torch.save`` of ``checkpoint``; ``numpy_module``: the module path its pickle names
    NumPy's rebuilders under (``numpy.core``: as a checkpoint written under NumPy 1.x)."""
    file = io.BytesIO()
    torch.save(checkpoint, file)
    if numpy_module is None:
        file.seek(0)
        return file
    source, rewritten = zipfile.ZipFile(file), io.BytesIO()
    with zipfile.ZipFile(rewritten, 'w', zipfile.ZIP_STORED) as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename.endswith('data.pkl'):
                assert b'numpy._core.multiarray' in data
                data = data.replace(b'numpy._core.multiarray', numpy_module.encode() + b'.multiarray')
            target.writestr(item, data)
    rewritten.seek(0)
    return rewritten


@pytest.mark.parametrize('numpy_module', [None, 'numpy.core'])
def test_an_mmengine_checkpoint_loads_weights_only_inside_the_block(numpy_module, monkeypatch):
    with pytest.raises(Exception, match='Unsupported global'):
        torch.load(saved(mmengine_checkpoint(), numpy_module), weights_only=True)
    file = saved(mmengine_checkpoint(), numpy_module)
    # as in a fresh process: MMEngine registers the statistics methods when the first buffer is made
    monkeypatch.setattr(HistoryBuffer, '_statistics_methods', {})
    with trusted_checkpoint_globals():
        loaded = torch.load(file, weights_only=True)
    assert loaded['meta']['dataset_meta']['palette'].shape == (2, 3)
    buffer, original = (c['message_hub']['log_scalars']['train/loss'] for c in (loaded, mmengine_checkpoint()))
    assert same_history(buffer, original)
    # its statistics methods came back through the allow-listed getattr
    assert buffer._statistics_methods == original._statistics_methods and buffer.mean(2) == original.mean(2)


class _Builtins:  # getattr(getattr, '__self__'): the builtins module
    def __reduce__(self):
        return getattr, (getattr, '__self__')


class _Eval:
    def __reduce__(self):
        return getattr, (_Builtins(), 'eval')


class _Payload:  # torch's allow-listed rebuilder calls the function it is given: eval(code)
    def __init__(self, code):
        self.code = code

    def __reduce__(self):
        return torch._tensor._rebuild_from_type_v2, (_Eval(), torch.Tensor, (self.code,), None)


def test_a_crafted_checkpoint_cannot_run_code_inside_the_block(tmp_path):
    """The allow-list's getattr serves HistoryBuffer's statistics methods only: the real one
    reaches builtins.eval through getattr(getattr, '__self__')."""
    marker = tmp_path / 'code_ran'
    code = f"(open({str(marker)!r}, 'w'), __import__('torch').zeros(1))[1]"
    with trusted_checkpoint_globals(), pytest.raises(Exception, match='only needs the methods of HistoryBuffer'):
        torch.load(saved(dict(meta=dict(x=_Payload(code)))), weights_only=True)
    assert not marker.exists()


def test_a_checkpoint_made_safe_loads_weights_only_and_restores_its_buffers():
    checkpoint = make_weights_only_safe(mmengine_checkpoint())
    loaded = restore_history_buffers(torch.load(saved(checkpoint), weights_only=True))
    assert same_history(loaded['message_hub']['log_scalars']['train/loss'],
                        mmengine_checkpoint()['message_hub']['log_scalars']['train/loss'])
    assert loaded['meta']['epoch'] == 1 and loaded['message_hub']['runtime_info']['iter'] == 6


def test_long_histories_are_saved_as_tensors_and_older_list_checkpoints_still_restore():
    """A run keeps up to a million values a logged key; as Python lists the weights-only
    unpickler read seven such keys in 11-23 s, as tensors at once. Values and dtypes survive."""
    buffer = HistoryBuffer(np.linspace(0, 1, 1000).tolist(), np.arange(1000).tolist(), max_length=1000)
    checkpoint = make_weights_only_safe(dict(message_hub=dict(log_scalars={'train/loss': buffer})))
    stored = checkpoint['message_hub']['log_scalars']['train/loss']
    assert torch.is_tensor(stored['log']) and torch.is_tensor(stored['count'])
    loaded = restore_history_buffers(torch.load(saved(checkpoint), weights_only=True))['message_hub']
    restored = loaded['log_scalars']['train/loss']
    assert same_history(restored, buffer) and restored._log_history.dtype == buffer._log_history.dtype
    older = dict(message_hub=dict(log_scalars={'train/loss': dict(stored, log=stored['log'].tolist(),
                                                                 count=stored['count'].tolist())}))
    assert same_history(restore_history_buffers(older)['message_hub']['log_scalars']['train/loss'], buffer)


class OnDevice(torch.Tensor):
    """A tensor as MMEngine's resume loads it on a GPU (``map_location='cuda'``): NumPy
    cannot read it until it is copied to the host."""

    def numpy(self, *args, **kwargs):
        raise TypeError("can't convert cuda:0 device type tensor to numpy")

    def cpu(self, *args, **kwargs):
        return self.as_subclass(torch.Tensor)


def test_histories_loaded_onto_a_gpu_restore():
    buffer = HistoryBuffer([0.5, 0.25], [2, 1], max_length=10)
    stored = make_weights_only_safe(dict(message_hub=dict(log_scalars={'train/loss': buffer})))
    entry = stored['message_hub']['log_scalars']['train/loss']
    entry['log'], entry['count'] = entry['log'].as_subclass(OnDevice), entry['count'].as_subclass(OnDevice)
    assert same_history(restore_history_buffers(stored)['message_hub']['log_scalars']['train/loss'], buffer)


def test_a_one_cycle_scheduler_state_is_saved_weights_only_safe_and_resumes():
    """MMEngine's OneCycle scheduler keeps a function (anneal_func) in its state."""
    from mmengine.optim.scheduler import OneCycleLR

    def scheduler():
        optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
        return optimizer, OneCycleLR(optimizer, eta_max=0.1, total_steps=10, anneal_strategy='linear')

    optimizer, running = scheduler()
    for _ in range(3):
        optimizer.step()
        running.step()
    checkpoint = make_weights_only_safe(dict(param_schedulers=[running.state_dict()]))
    loaded = torch.load(saved(checkpoint), weights_only=True)
    resumed_optimizer, resumed = scheduler()
    resumed.load_state_dict(loaded['param_schedulers'][0])
    resumed_optimizer.load_state_dict(optimizer.state_dict())
    for _ in range(3):
        running.step()
        resumed.step()
        assert resumed_optimizer.param_groups[0]['lr'] == optimizer.param_groups[0]['lr']
    assert callable(running.anneal_func)  # the live scheduler keeps its own


@pytest.mark.parametrize('name', ['__setstate__', '_set_default_statistics', '__class__'])
def test_the_unpicklers_getattr_refuses_private_and_dunder_names(name):
    import pickle

    from ipswap_mm.engine.checkpoint_safety import history_buffer_getattr
    assert history_buffer_getattr(HistoryBuffer, 'mean') is HistoryBuffer.mean
    with pytest.raises(pickle.UnpicklingError, match='only needs the methods of HistoryBuffer'):
        history_buffer_getattr(HistoryBuffer, name)


class Scheduler:
    def anneal(self, value):
        return value


def load_weights_only(checkpoint: dict) -> dict:
    file = io.BytesIO()
    torch.save(checkpoint, file)
    file.seek(0)
    return torch.load(file, weights_only=True)


def test_bound_methods_and_builtins_in_scheduler_states_are_left_out():
    state = dict(last_step=3, anneal_func=Scheduler().anneal, floor=math.floor)
    checkpoint = make_weights_only_safe(dict(param_schedulers=[state]))
    assert checkpoint['param_schedulers'] == [dict(last_step=3)]
    assert load_weights_only(checkpoint)['param_schedulers'] == [dict(last_step=3)]


def test_the_unpicklers_getattr_gives_only_history_buffer_methods():
    from ipswap_mm.engine.checkpoint_safety import history_buffer_getattr
    for obj in ({}, [], object()):
        with pytest.raises(pickle.UnpicklingError, match='only needs the methods of HistoryBuffer'):
            history_buffer_getattr(obj, 'update')


def test_numpy_values_inside_tuples_become_python_values():
    checkpoint = make_weights_only_safe(dict(meta=dict(img_shape=(np.int64(4), np.float32(0.5)))))
    loaded = load_weights_only(checkpoint)
    assert loaded['meta']['img_shape'] == (4, 0.5) and type(loaded['meta']['img_shape'][0]) is int
