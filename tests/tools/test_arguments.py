import argparse
import os
import subprocess
import sys

import pytest

from tools.arguments import nonnegative_int, positive_int

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_counts_below_their_floor_are_refused():
    assert positive_int('3') == 3 and nonnegative_int('0') == 0
    with pytest.raises(argparse.ArgumentTypeError, match='positive integer, got 0'):
        positive_int('0')
    with pytest.raises(argparse.ArgumentTypeError, match='>= 0, got -1'):
        nonnegative_int('-1')


@pytest.mark.parametrize('command', [
    ['benchmark_swap.py', '--repeats', '0'],  # crashed on an empty min()
    ['benchmark_cost.py', '--rounds', '0'],  # crashed dividing by zero after the whole run
    ['benchmark_accuracy.py', '--iters', '0'],  # ran the default 800
    ['benchmark_accuracy.py', '--tasks', ','],  # wrote its report, then crashed
])
def test_a_tool_refuses_a_count_that_would_crash_or_mean_the_default(command):
    result = subprocess.run([sys.executable, os.path.join(ROOT, 'tools', command[0]), *command[1:]],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 2 and 'error:' in result.stderr
