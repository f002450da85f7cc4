"""q4f32_1: the packing layout compile/ and the browser rely on, the error bound, and edge cases."""
import numpy as np
import pytest

from models.quantization import dequantize_q4f32_1, quantize_q4f32_1


def test_packing_layout():
    # One row, one group: w = q - 7 with max|w| = 7, so scale = 1 and the 4-bit values are exactly q.
    q = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 7] * 2)
    q_weight, q_scale = quantize_q4f32_1((q - 7).astype(np.float32)[None, :])
    assert q_weight.dtype == np.uint32 and q_weight.shape == (1, 4)
    assert q_scale.dtype == np.float32 and q_scale.shape == (1, 1) and q_scale[0, 0] == 1
    # element r of each run of 8 sits at bits 4r..4r+3
    assert [hex(word) for word in q_weight[0]] == ["0x76543210", "0x7edcba98", "0x76543210", "0x7edcba98"]


def test_shapes_and_exact_round_trip_of_representable_weights():
    rng = np.random.default_rng(0)
    q = rng.integers(0, 15, size=(6, 128))
    q[:, ::32] = 0  # every group reaches -7 * scale, so its scale is exactly the chosen one
    scale = rng.uniform(0.01, 1, size=(6, 4)).astype(np.float32)
    w = (q - 7).astype(np.float32) * np.repeat(scale, 32, axis=1)
    q_weight, q_scale = quantize_q4f32_1(w)
    assert q_weight.shape == (6, 16) and q_scale.shape == (6, 4)
    np.testing.assert_allclose(q_scale, scale, rtol=1e-6)
    np.testing.assert_allclose(dequantize_q4f32_1(q_weight, q_scale), w, rtol=1e-6, atol=0)


def test_error_is_at_most_half_a_step_per_group():
    rng = np.random.default_rng(1)
    w = rng.standard_normal((64, 256)).astype(np.float32) * rng.uniform(0.001, 10, size=(64, 1)).astype(np.float32)
    w[3, 40] = 1000.0  # an outlier only widens its own group's step
    q_weight, q_scale = quantize_q4f32_1(w)
    error = np.abs(w - dequantize_q4f32_1(q_weight, q_scale)).reshape(64, 8, 32).max(axis=-1)
    assert (error <= q_scale / 2 * (1 + 1e-6)).all()
    assert error.max() > 0  # not trivially exact


def test_all_zero_group_has_scale_zero_and_reads_back_as_zero():
    w = np.zeros((2, 64), np.float32)
    w[1, 32:] = np.linspace(-1, 1, 32)
    with np.errstate(all="raise"):
        q_weight, q_scale = quantize_q4f32_1(w)
        restored = dequantize_q4f32_1(q_weight, q_scale)
    assert q_scale[0].tolist() == [0, 0] and q_scale[1, 0] == 0 and q_scale[1, 1] == np.float32(1) / 7
    assert (q_weight[0] == 0x77777777).all() and (restored[:, :32] == 0).all() and (restored[0] == 0).all()


def test_in_features_must_be_a_multiple_of_32():
    with pytest.raises(ValueError, match=r"multiple of 32, got \(4, 48\)"):
        quantize_q4f32_1(np.ones((4, 48), np.float32))


def test_dequantize_refuses_mismatched_arrays():
    q_weight, q_scale = quantize_q4f32_1(np.ones((4, 64), np.float32))
    with pytest.raises(ValueError, match="not a q4f32_1 pair"):
        dequantize_q4f32_1(q_weight, q_scale[:, :1])


def test_real_weights_meet_the_error_bound(smollm2_weights):
    w = smollm2_weights["model.layers.0.mlp.down_proj.weight"]
    q_weight, q_scale = quantize_q4f32_1(w)
    error = np.abs(w - dequantize_q4f32_1(q_weight, q_scale)).reshape(*q_scale.shape, 32).max(axis=-1)
    assert (error <= q_scale / 2 * (1 + 1e-6)).all()
