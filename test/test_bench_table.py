# SPDX-License-Identifier: Apache-2.0
"""bench/'s one table writer: every row as wide as the header, pipes in cells escaped."""
import pytest

from bench.common import Table, mean_std


def test_table_renders_markdown_and_refuses_a_row_of_the_wrong_width():
    table = Table('task', 'success')
    table.add('reach', mean_std([0.9, 1.0], digits=2))
    table.add('a|b', 3)
    assert table.lines() == ['| task | success |', '|---|---|', '| reach | 0.95 ± 0.05 |',
                             '| a\\|b | 3 |']
    with pytest.raises(ValueError, match='3 cells for 2 columns'):
        table.add('push', 1, 2)
