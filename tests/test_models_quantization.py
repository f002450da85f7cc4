"""Quantized matrices (models.quantization): the packing layout compile/ and the browser rely on, the two float
quantizers' error bounds and edge cases, and fusing matrices of mixed formats without losing a value."""
import numpy as np
import pytest

from models.quantization import (Q4F32_1, Q4G32, BlockWeight, WeightFormat, pack_codes, quantize_q4f32_1,
                                 quantize_q4f32_asym, stack_rows, unpack_codes)


def test_packing_layout():
    # One row, one group: w = q - 7 with max|w| = 7, so scale = 1 and the 4-bit codes are exactly q.
    q = np.array([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 7] * 2)
    packed = quantize_q4f32_1((q - 7).astype(np.float32)[None, :]).packed()
    assert packed.keys() == {"q_weight", "q_scale"}  # q4f32_1 implies its minimum: MLC's layout
    assert packed["q_weight"].dtype == np.uint32 and packed["q_weight"].shape == (1, 4)
    assert packed["q_scale"].dtype == np.float32 and packed["q_scale"].shape == (1, 1) and packed["q_scale"][0, 0] == 1
    # element r of each run of 8 sits at bits 4r..4r+3
    assert [hex(word) for word in packed["q_weight"][0]] == ["0x76543210", "0x7edcba98", "0x76543210", "0x7edcba98"]
    # 8-bit codes: element r of each run of 4 at bits 8r..8r+7
    assert hex(pack_codes(np.array([[0x01, 0x23, 0x45, 0xfe]], np.uint8), 8)[0, 0]) == "0xfe452301"


@pytest.mark.parametrize("bits", [4, 8])
def test_pack_and_unpack_are_inverses(bits):
    codes = np.random.default_rng(bits).integers(0, 1 << bits, size=(3, 64)).astype(np.uint8)
    assert (unpack_codes(pack_codes(codes, bits), bits) == codes).all()


def test_q4f32_1_round_trips_representable_weights_exactly():
    rng = np.random.default_rng(0)
    q = rng.integers(0, 15, size=(6, 128))
    q[:, ::32] = 0  # every group reaches -7 * scale, so its scale is exactly the chosen one
    scale = rng.uniform(0.01, 1, size=(6, 4)).astype(np.float32)
    w = (q - 7).astype(np.float32) * np.repeat(scale, 32, axis=1)
    quantized = quantize_q4f32_1(w)
    assert quantized.codes.shape == (6, 128) and quantized.scale.shape == (6, 4) and quantized.min is None
    np.testing.assert_allclose(quantized.scale, scale, rtol=1e-6)
    np.testing.assert_allclose(quantized.dequantize(), w, rtol=1e-6, atol=0)


@pytest.mark.parametrize("quantize", [quantize_q4f32_1, quantize_q4f32_asym])
def test_error_is_at_most_half_a_step_per_group(quantize):
    rng = np.random.default_rng(1)
    w = rng.standard_normal((64, 256)).astype(np.float32) * rng.uniform(0.001, 10, size=(64, 1)).astype(np.float32)
    w[3, 40] = 1000.0  # an outlier only widens its own group's step
    quantized = quantize(w)
    error = np.abs(w - quantized.dequantize()).reshape(64, 8, 32).max(axis=-1)
    assert (error <= quantized.scale / 2 * (1 + 1e-5)).all()
    assert error.max() > 0  # not trivially exact


def test_asymmetric_quantization_is_more_faithful_on_real_weights(smollm2_weights):
    w = smollm2_weights["model.layers.0.mlp.down_proj.weight"]
    errors = {q.__name__: np.sqrt(np.mean((q(w).dequantize() - w) ** 2)) for q in (quantize_q4f32_1, quantize_q4f32_asym)}
    assert errors["quantize_q4f32_asym"] < 0.8 * errors["quantize_q4f32_1"], errors


def test_constant_and_zero_groups_read_back_exactly():
    w = np.zeros((2, 64), np.float32)
    w[1, :32] = 0.25  # constant, non-zero
    w[1, 32:] = np.linspace(-1, 1, 32)
    with np.errstate(all="raise"):
        symmetric, asymmetric = quantize_q4f32_1(w), quantize_q4f32_asym(w)
        restored = symmetric.dequantize(), asymmetric.dequantize()
    assert symmetric.scale[0].tolist() == [0, 0] and (symmetric.codes[0] == 7).all() and (restored[0][0] == 0).all()
    assert asymmetric.scale[1, 0] == 0 and (restored[1][1, :32] == np.float32(0.25)).all() and (restored[1][0] == 0).all()


def test_in_features_must_be_a_multiple_of_32():
    with pytest.raises(ValueError, match=r"multiple of 32, got \(4, 48\)"):
        quantize_q4f32_1(np.ones((4, 48), np.float32))


def test_block_weight_refuses_mismatched_arrays():
    q = quantize_q4f32_asym(np.ones((4, 64), np.float32))
    with pytest.raises(ValueError, match="do not form a q4g32 matrix"):
        BlockWeight(q.codes, q.scale[:, :1], q.min, q.format)
    with pytest.raises(ValueError, match="do not form a q4g32z7 matrix"):
        BlockWeight(q.codes, q.scale, q.min, Q4F32_1)  # q4f32_1's zero code is 7: it stores no minimum


def test_fusing_mixed_formats_widens_without_changing_a_value():
    rng = np.random.default_rng(2)
    four_bit = BlockWeight(rng.integers(0, 16, (2, 64)).astype(np.uint8), rng.random((2, 2), np.float32),
                           rng.random((2, 2), np.float32), Q4G32)
    # Q6_K-like: 6-bit codes around a zero code of 32, a scale per 16 (f16 times int8, as in a GGUF)
    scale = (rng.random((3, 4)).astype(np.float16).astype(np.float32) * rng.integers(-128, 128, (3, 4))).astype(np.float32)
    six_bit = BlockWeight(rng.integers(0, 64, (3, 64)).astype(np.uint8), scale, None, WeightFormat(8, 16, zero_code=32))
    fused = stack_rows([four_bit, six_bit])
    assert fused.format == WeightFormat(8, 16) and fused.shape == (5, 64)
    assert (fused.dequantize() == np.concatenate([four_bit.dequantize(), six_bit.dequantize()])).all()
    with pytest.raises(ValueError, match="cannot hold q8g32 in q4g32"):
        BlockWeight(six_bit.codes, scale[:, ::2], scale[:, ::2], WeightFormat(8, 32)).widened(Q4G32)
