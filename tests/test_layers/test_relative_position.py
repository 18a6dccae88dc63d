"""The relative position bias index and its resizing to other windows."""
import official  # tests/official.py
from mmhrformer.layers import relative_position_index, resize_rpe_table


def test_relative_position_index_formula():
    w = 3
    idx = relative_position_index(w)
    coords = [(i, j) for i in range(w) for j in range(w)]
    for a, (y1, x1) in enumerate(coords):
        for b, (y2, x2) in enumerate(coords):
            assert idx[a, b] == (y1 - y2 + w - 1) * (2 * w - 1) + (x1 - x2 + w - 1)


def test_index_equals_the_official_construction():
    for w in (7, 13, 15):
        assert (relative_position_index(w) == official.relative_position_index(w)).all()


def test_resize_equals_the_official_seg_resize():
    table = official.random_state_dict('tiny')['stage2.0.branches.0.0.attn.attn.'
                                              'relative_position_bias_table']
    for w in (13, 15):
        assert (resize_rpe_table(table, w) == official.resize_table(table, w)).all()
    assert resize_rpe_table(table, 7) is table
