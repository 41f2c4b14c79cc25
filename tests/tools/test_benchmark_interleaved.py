"""``tools/benchmark_interleaved.py`` at toy size: the variants timed step by step in one process."""
import json
import math

import pytest

from tools import benchmark_interleaved


@pytest.mark.timeout(300)
def test_every_variant_is_timed_in_alternation_with_the_baseline(tmp_path, capsys):
    benchmark_interleaved.main(['--tasks', 'one_stage', '--variants', 'all', '--steps', '3', '--warmup', '1',
                                '--crop', '64', '--batch', '2', '--out', str(tmp_path)])
    with open(tmp_path / 'interleaved.json') as file:
        report = json.load(file)
    row, = report['rows']
    assert row['task'] == 'one_stage'
    assert sorted(row['times_s']) == ['baseline', 'feature_kd', 'ips', 'mixup', 'teacher_kd']
    for name, times in row['times_s'].items():
        assert len(times) == 3 and all(math.isfinite(t) and t > 0 for t in times)
        ratios = sorted(t / base for base, t in zip(row['times_s']['baseline'], times))
        assert row['median_step_ratio'][name] == pytest.approx(ratios[1])
        assert row['ratio_of_medians'][name] == pytest.approx(row['median_s'][name] / row['median_s']['baseline'])
    assert row['ratio_of_medians']['baseline'] == 1.0
    # only the IPS model adds the pair loss
    assert [name for name, keys in row['losses'].items() if 'loss_ips_kl' in keys] == ['ips']
    assert 'one_stage/teacher_kd:' in capsys.readouterr().out


@pytest.mark.parametrize('argv', [['--batch', '3'], ['--tasks', 'seg', '--variants', 'mixup']])
def test_bad_arguments_are_refused(argv):
    with pytest.raises(SystemExit):
        benchmark_interleaved.main(argv)


def test_a_pair_loss_outside_the_ips_variant_is_an_error(monkeypatch):
    """The tool refuses to report a run in which the pair loss is not where it belongs."""
    from tools import benchmark_cost

    class Step:
        def __init__(self, task, name, *args):
            self.name = name

        def prepared(self):
            return None

        def train_step(self, prepared):
            return {'loss_cls': 1.0, **({'loss_ips_kl': 0.1} if self.name in ('baseline', 'ips') else {})}

        def close(self):
            pass

    monkeypatch.setattr(benchmark_cost, 'VariantStep', Step)
    with pytest.raises(RuntimeError, match=r"loss_ips_kl was logged by \['baseline', 'ips'\]"):
        benchmark_interleaved.interleaved('one_stage', 'cpu', 1, 0, 64, 2, ('ips',))
