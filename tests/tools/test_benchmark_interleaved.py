"""``tools/benchmark_interleaved.py`` at toy size: both variants timed step by step in one process."""
import json
import math

import pytest

from tools import benchmark_interleaved


@pytest.mark.timeout(300)
def test_both_variants_are_timed_in_alternation_and_reported(tmp_path, capsys):
    benchmark_interleaved.main(['--tasks', 'one_stage', '--steps', '3', '--warmup', '1', '--crop', '64',
                                '--batch', '2', '--out', str(tmp_path)])
    with open(tmp_path / 'interleaved.json') as file:
        report = json.load(file)
    row, = report['rows']
    assert row['task'] == 'one_stage' and len(row['baseline_s']) == len(row['ips_s']) == 3
    assert 'loss_ips_kl' in row['losses']['ips'] and 'loss_ips_kl' not in row['losses']['baseline']
    assert all(math.isfinite(t) and t > 0 for t in row['baseline_s'] + row['ips_s'])
    assert row['ratio_of_medians'] == pytest.approx(row['ips_median_s'] / row['baseline_median_s'])
    ratios = sorted(ips / base for base, ips in zip(row['baseline_s'], row['ips_s']))
    assert row['median_step_ratio'] == pytest.approx(ratios[1])
    assert 'one_stage: baseline' in capsys.readouterr().out


def test_odd_batch_is_refused():
    with pytest.raises(SystemExit):
        benchmark_interleaved.main(['--batch', '3'])
