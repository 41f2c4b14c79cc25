import pytest

from tools import benchmark_swap


def test_swap_and_copy_are_timed_for_every_size(capsys):
    rows = benchmark_swap.main(['--sizes', '32x2,64x4', '--repeats', '2'])
    assert [(row['side'], row['batch']) for row in rows] == [(32, 2), (64, 4)]
    for row in rows:
        assert row['swap_s'] > 0 and row['copy_s'] > 0
        assert row['swap_over_copy'] == pytest.approx(row['swap_s'] / row['copy_s'])
        assert row['unchecked_s'] > 0
        assert row['unchecked_over_copy'] == pytest.approx(row['unchecked_s'] / row['copy_s'])
        assert row['images_pixelwise_s'] > 0 and row['images_words_s'] > 0
    assert '64x64 x 4: swap' in capsys.readouterr().out


def test_odd_batch_is_refused(capsys):
    with pytest.raises(SystemExit):
        benchmark_swap.main(['--sizes', '64x3'])
    assert 'even BATCH' in capsys.readouterr().err


def test_a_patch_size_that_does_not_divide_a_side_is_refused_before_anything_runs(capsys):
    from tools.benchmark_swap import main
    with pytest.raises(SystemExit):
        main(['--sizes', '100x2'])
    assert '--patch-size 32 does not divide its side' in capsys.readouterr().err
    rows = main(['--sizes', '40x2', '--patch-size', '20', '--repeats', '1'])
    assert rows[0]['side'] == 40 and rows[0]['swap_s'] > 0
