"""gmp.schedule against SparseML 1.8's own functions (installed reference).

gmp's other schedule tests (formula, clamping, update timing) are in gmp/tests/test_schedule.py.
"""

from __future__ import annotations

import os

os.environ.setdefault("NM_DISABLE_ANALYTICS", "1")

import pytest

from gmp.schedule import interpolate


@pytest.mark.parametrize("inter_func", ["linear", "cubic", "inverse_cubic"])
def test_interpolate_bit_identical_to_sparseml_inside_window(inter_func):
    from sparseml.utils.helpers import interpolate as sml_interpolate  # the reference

    for i in range(0, 101):
        epoch = 1.0 + 3.0 * i / 100
        assert interpolate(epoch, 1.0, 4.0, 0.05, 0.9, inter_func) == sml_interpolate(
            epoch, 1.0, 4.0, 0.05, 0.9, inter_func
        )
