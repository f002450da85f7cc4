"""Comparing float32 results that were computed with the same math but sums in another order (matrix-matrix vs
matrix-vector products, another BLAS kernel or CPU, TVM's kernels): the rounding errors grow with the magnitude
of the values summed, which the largest |output| measures, not with each output's own value. A logit near 0 at
the end of sums of terms as large as the largest logit can move as much as the largest one. So the tolerance is a
fraction of the output's scale, the same for every element, and holds on every machine rather than the one that
wrote the test (one machine measured 1.15e-4 apart at a logit of -0.12 on a scale of 16: 7e-6 of the scale)."""
import numpy as np

# float32's epsilon is 1.2e-7; a product of a few hundred terms reordered accumulates tens to hundreds of ulps
SAME_MATH_REORDERED = 2e-5


def assert_close_to_scale(actual, expected, fraction: float = SAME_MATH_REORDERED, err_msg: str = "") -> None:
    """actual == expected within `fraction` of max|expected|, for every element."""
    expected = np.asarray(expected)
    scale = float(np.max(np.abs(expected)))
    np.testing.assert_allclose(actual, expected, rtol=0, atol=fraction * scale,
                               err_msg=f"{err_msg} (tolerance {fraction:g} of the scale {scale:.3g})".strip())
