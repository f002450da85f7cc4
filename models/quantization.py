"""q4f32_1 group quantization in numpy: the weight layout compile/ ships and the browser dequantizes.

Groups of 32 consecutive input features share one float32 scale = max|w| / 7; each weight becomes
q = clamp(round(w / scale + 7), 0, 14) in 4 bits, 8 per uint32 (element r at bits 4r..4r+3), and reads back
as (q - 7) * scale. Rounding is numpy's round-half-to-even.
"""
import numpy as np

GROUP_SIZE = 32
ELEMS_PER_WORD = 8  # 4-bit values per uint32
MAX_INT = 7
_SHIFTS = np.arange(ELEMS_PER_WORD, dtype=np.uint32) * 4


def quantize_q4f32_1(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """float32 [out, in] -> (q_weight uint32 [out, in / 8], q_scale float32 [out, in / 32])."""
    w = np.asarray(w, dtype=np.float32)
    if w.ndim != 2 or w.shape[1] % GROUP_SIZE:
        raise ValueError(f"q4f32_1 needs a 2-D weight whose in_features is a multiple of {GROUP_SIZE}, got {w.shape}")
    out_features, in_features = w.shape
    groups = w.reshape(out_features, in_features // GROUP_SIZE, GROUP_SIZE)
    scale = np.abs(groups).max(axis=-1) / np.float32(MAX_INT)
    # An all-zero group has scale 0: divide by 1 instead; its q is then 7, which reads back as exactly 0.
    divisor = np.where(scale == 0, np.float32(1), scale)[..., None]
    q = np.clip(np.round(groups / divisor + MAX_INT), 0, 2 * MAX_INT).astype(np.uint32)
    words = q.reshape(out_features, in_features // ELEMS_PER_WORD, ELEMS_PER_WORD) << _SHIFTS
    return np.bitwise_or.reduce(words, axis=-1), scale


def dequantize_q4f32_1(q_weight: np.ndarray, q_scale: np.ndarray) -> np.ndarray:
    """(q_weight uint32 [out, in / 8], q_scale float32 [out, in / 32]) -> float32 [out, in]."""
    out_features, words = q_weight.shape
    in_features = words * ELEMS_PER_WORD
    if q_weight.dtype != np.uint32 or q_scale.shape != (out_features, in_features // GROUP_SIZE):
        raise ValueError(f"q_weight {q_weight.dtype}{list(q_weight.shape)} and q_scale {list(q_scale.shape)} "
                         "are not a q4f32_1 pair")
    q = (q_weight[..., None] >> _SHIFTS) & 0xF
    groups = q.reshape(out_features, -1, GROUP_SIZE).astype(np.float32) - MAX_INT
    return (groups * q_scale[..., None].astype(np.float32)).reshape(out_features, in_features)


def q4f32_1_round_trip(weights: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """What q4f32_1 keeps of a model: every weight matrix quantized and read back, 1-D weights as they are."""
    return {name: dequantize_q4f32_1(*quantize_q4f32_1(w)) if w.ndim == 2 else w for name, w in weights.items()}
