"""A GGUF tensor's own quantized blocks -> a BlockWeight (models.quantization) that holds the same values.

Every supported block type reads back as code * scale + min, or (code - zero code) * scale, per group, with
scales and minimums products of an f16 and a small integer (exact in float32): Q4_0 d*(q-8); Q4_1 d*q+m;
Q5_0 d*(q-16); Q5_1 d*q+m; Q8_0 d*q with q signed, stored as q+128 (zero code 128); Q4_K and Q5_K
(d*sc)*q - dmin*mn per 32 of a 256-weight super-block with 6-bit sc and mn; Q6_K (d*sc)*(q-32) per 16 with
8-bit sc. The block layouts are ggml's (ggml-common.h).
"""
from collections.abc import Callable

import numpy as np
from gguf import GGMLQuantizationType as T

from models.quantization import BlockWeight, WeightFormat

SUPER_BLOCK = 256  # weights per K-quant block


def _f16(blocks: np.ndarray, start: int) -> np.ndarray:
    """The float16 at byte `start` of every block, as float32 [n, 1]."""
    return np.ascontiguousarray(blocks[:, start:start + 2]).view(np.float16).astype(np.float32)


def _nibbles(packed: np.ndarray) -> np.ndarray:
    """[n, 16] bytes -> [n, 32] codes: low nibbles are elements 0..15, high nibbles 16..31."""
    return np.concatenate([packed & 0xF, packed >> 4], axis=1)


def _high_bits(qh: np.ndarray) -> np.ndarray:
    """[n, 4] bytes (a little-endian uint32) -> [n, 32] bits, element j from bit j."""
    return np.unpackbits(qh, axis=1, bitorder="little")


def _q4_0(b):
    return _nibbles(b[:, 2:18]), _f16(b, 0), None


def _q4_1(b):
    return _nibbles(b[:, 4:20]), _f16(b, 0), _f16(b, 2)


def _q5_0(b):
    return _nibbles(b[:, 6:22]) | _high_bits(b[:, 2:6]) << 4, _f16(b, 0), None


def _q5_1(b):
    return _nibbles(b[:, 8:24]) | _high_bits(b[:, 4:8]) << 4, _f16(b, 0), _f16(b, 2)


def _q8_0(b):
    return (b[:, 2:34].view(np.int8).astype(np.int16) + 128).astype(np.uint8), _f16(b, 0), None


def _k_scales(b: np.ndarray, start: int) -> tuple[np.ndarray, np.ndarray]:
    """The 8 six-bit scales and mins of a Q4_K/Q5_K block from 12 bytes: bytes 0-3 hold scales 0-3 in their low
    6 bits, 4-7 mins 0-3; scales and mins 4-7 take their low 4 bits from the nibbles of bytes 8-11 and their top
    2 bits from the top bits of bytes 0-3 (scales) and 4-7 (mins)."""
    s = b[:, start:start + 12]
    scales = np.concatenate([s[:, 0:4] & 63, (s[:, 8:12] & 0xF) | (s[:, 0:4] >> 6) << 4], axis=1)
    mins = np.concatenate([s[:, 4:8] & 63, (s[:, 8:12] >> 4) | (s[:, 4:8] >> 6) << 4], axis=1)
    return scales.astype(np.float32), mins.astype(np.float32)


def _k_low_nibbles(qs: np.ndarray) -> np.ndarray:
    """[n, 128] bytes -> [n, 256] codes: each run of 32 bytes gives two sub-blocks, low nibbles first."""
    runs = qs.reshape(len(qs), 4, 1, 32) >> np.array([0, 4], np.uint8).reshape(1, 1, 2, 1)
    return (runs & 0xF).reshape(len(qs), SUPER_BLOCK)


def _q4_k(b):
    scales, mins = _k_scales(b, 4)
    return _k_low_nibbles(b[:, 16:144]), _f16(b, 0) * scales, -(_f16(b, 2) * mins)


def _q5_k(b):
    scales, mins = _k_scales(b, 4)
    # Bit i of high byte l is the fifth bit of element l of sub-block i.
    high = (b[:, 16:48, None] >> np.arange(8, dtype=np.uint8)) & 1
    codes = _k_low_nibbles(b[:, 48:176]) | high.transpose(0, 2, 1).reshape(len(b), SUPER_BLOCK) << 4
    return codes, _f16(b, 0) * scales, -(_f16(b, 2) * mins)


def _q6_k(b):
    n = len(b)
    # Two halves of 128 weights; in half h, element e takes the low 4 bits from byte e % 64 of its 64 ql bytes
    # (nibble e // 64) and the top 2 bits from byte e % 32 of its 32 qh bytes (bits 2 * (e // 32)).
    ql = b[:, :128].reshape(n, 2, 1, 64) >> np.array([0, 4], np.uint8).reshape(1, 1, 2, 1)
    qh = b[:, 128:192].reshape(n, 2, 1, 32) >> np.array([0, 2, 4, 6], np.uint8).reshape(1, 1, 4, 1)
    codes = (ql & 0xF).reshape(n, SUPER_BLOCK) | (qh & 3).reshape(n, SUPER_BLOCK) << 4
    return codes, _f16(b, 208) * b[:, 192:208].view(np.int8).astype(np.float32), None


Unpacker = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray | None]]
# type -> (block bytes, weights per block, format, unpack): unpack gives codes [n, weights], scale and min
# [n, groups per block] for n blocks (no min where the format has a zero code).
BLOCK_TYPES: dict[T, tuple[int, int, WeightFormat, Unpacker]] = {
    T.Q4_0: (18, 32, WeightFormat(4, 32, zero_code=8), _q4_0),
    T.Q4_1: (20, 32, WeightFormat(4, 32), _q4_1),
    T.Q5_0: (22, 32, WeightFormat(8, 32, zero_code=16), _q5_0),
    T.Q5_1: (24, 32, WeightFormat(8, 32), _q5_1),
    T.Q8_0: (34, 32, WeightFormat(8, 32, zero_code=128), _q8_0),
    T.Q4_K: (144, SUPER_BLOCK, WeightFormat(4, 32), _q4_k),
    T.Q5_K: (176, SUPER_BLOCK, WeightFormat(8, 32), _q5_k),
    T.Q6_K: (210, SUPER_BLOCK, WeightFormat(8, 16, zero_code=32), _q6_k),
}


def unpack_blocks(data: np.ndarray, ggml_type: T, shape: tuple[int, int]) -> BlockWeight:
    """A GGUF tensor's raw bytes (uint8, one row of blocks per output feature) -> its BlockWeight, (out, in)."""
    block_bytes, block_weights, fmt, unpack = BLOCK_TYPES[ggml_type]
    out_features, in_features = shape
    if in_features % block_weights or data.size != out_features * in_features // block_weights * block_bytes:
        raise ValueError(f"{ggml_type.name} data of {data.size} bytes does not hold a {list(shape)} matrix")
    codes, scale, low = unpack(np.ascontiguousarray(data, dtype=np.uint8).reshape(-1, block_bytes))
    groups = (out_features, in_features // fmt.group_size)
    return BlockWeight(codes.astype(np.uint8).reshape(shape), scale.astype(np.float32).reshape(groups),
                       None if low is None else low.astype(np.float32).reshape(groups), fmt)
