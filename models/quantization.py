"""Quantized weight matrices in numpy: the layouts compile/ ships and the browser dequantizes inside its matmuls.

A quantized matrix is a `BlockWeight`: small unsigned integer codes, and per group of `group_size` consecutive
input features a float32 scale and either a float32 minimum (the value code 0 reads as: w = code * scale + min)
or, where the format fixes one, a zero code (w = (code - zero_code) * scale, and no minimum is stored). That
holds a GGUF's own blocks exactly (models.gguf_blocks): Q4_1 and Q4_K as q4g32, Q4_0 as q4g32z8, Q5_1 and Q5_K
as q8g32, Q5_0 as q8g32z16, Q8_0 as q8g32z128, Q6_K (a scale per 16) as q8g16z32. Codes are packed into uint32
words, element r of a word at bits r*bits .. r*bits+bits-1.

Two quantizers make BlockWeights from float weights:
- q4f32_1 (MLC-LLM's, kept for compatibility): symmetric, scale = max|w| / 7, code = clamp(round(w / scale + 7),
  0, 14), read back as (code - 7) * scale; the minimum is implied (-7 * scale), so no q_min is stored.
- q4f32_asym: scale and minimum per group, code = round((w - min) / scale) with scale = (max - min) / 15: all
  16 levels span the group's own range. Rounding is numpy's round-half-to-even.
"""
from dataclasses import dataclass

import numpy as np

WORD_BITS = 32
GROUP_SIZE = 32  # of both float quantizers
Q4F32_1_ZERO_CODE = 7


@dataclass(frozen=True)
class WeightFormat:
    """How a quantized matrix is stored: `bits`-bit codes, a float32 scale per `group_size` inputs, and either a
    float32 minimum per group or a fixed `zero_code` (min = -zero_code * scale)."""

    bits: int
    group_size: int
    zero_code: int | None = None

    def __post_init__(self):
        if self.bits not in (4, 8) or self.group_size % (WORD_BITS // self.bits):
            raise ValueError(f"unsupported weight format: {self.bits}-bit codes in groups of {self.group_size}")

    @property
    def name(self) -> str:
        return f"q{self.bits}g{self.group_size}" + ("" if self.zero_code is None else f"z{self.zero_code}")

    @property
    def elems_per_word(self) -> int:
        return WORD_BITS // self.bits

    @property
    def has_min(self) -> bool:
        return self.zero_code is None


Q4F32_1 = WeightFormat(4, GROUP_SIZE, zero_code=Q4F32_1_ZERO_CODE)
Q4G32 = WeightFormat(4, 32)


@dataclass(frozen=True)
class BlockWeight:
    codes: np.ndarray  # uint8 [out, in], each < 2**bits
    scale: np.ndarray  # float32 [out, in / group_size]
    min: np.ndarray | None  # float32 [out, in / group_size]; None where the format has a zero code
    format: WeightFormat

    def __post_init__(self):
        out_features, in_features = self.codes.shape
        groups = (out_features, in_features // self.format.group_size)
        if (in_features % self.format.group_size or self.scale.shape != groups
                or (self.min is None) == self.format.has_min or (self.min is not None and self.min.shape != groups)):
            raise ValueError(f"codes {list(self.codes.shape)}, scale {list(self.scale.shape)} and min "
                             f"{None if self.min is None else list(self.min.shape)} do not form a "
                             f"{self.format.name} matrix")

    @property
    def shape(self) -> tuple[int, int]:
        return self.codes.shape

    def dequantize(self) -> np.ndarray:
        """float32 [out, in], computed as the kernels do: code * scale + min, or (code - zero_code) * scale."""
        group = self.format.group_size
        scale = np.repeat(self.scale, group, axis=1)
        if not self.format.has_min:
            return (self.codes.astype(np.float32) - np.float32(self.format.zero_code)) * scale
        return self.codes.astype(np.float32) * scale + np.repeat(self.min, group, axis=1)

    def take_rows(self, rows: np.ndarray) -> "BlockWeight":
        return BlockWeight(self.codes[rows], self.scale[rows], None if self.min is None else self.min[rows],
                           self.format)

    def widened(self, fmt: WeightFormat) -> "BlockWeight":
        """The same values in a format with a minimum, as many or more bits, and groups that divide this one's.
        A zero code becomes the minimum -zero_code * scale: exact for the GGUF types' powers of two."""
        if not fmt.has_min or fmt.bits < self.format.bits or self.format.group_size % fmt.group_size:
            raise ValueError(f"cannot hold {self.format.name} in {fmt.name}")
        low = self.min if self.format.has_min else -np.float32(self.format.zero_code) * self.scale
        repeat = self.format.group_size // fmt.group_size
        return BlockWeight(self.codes, np.repeat(self.scale, repeat, axis=1), np.repeat(low, repeat, axis=1), fmt)

    def packed(self) -> dict[str, np.ndarray]:
        """The parameters a quantized layer declares: q_weight (uint32 words), q_scale and, with a minimum, q_min."""
        arrays = {"q_weight": pack_codes(self.codes, self.format.bits), "q_scale": self.scale}
        if self.min is not None:
            arrays["q_min"] = self.min
        return arrays


Weight = np.ndarray | BlockWeight  # a parameter before packing: float32, or a quantized matrix


def stack_rows(parts: list[BlockWeight]) -> BlockWeight:
    """Concatenate along the output features (fused q/k/v, gate/up); mixed formats meet in the widest one with
    a minimum (a Q4_K_M file mixes Q4_K and Q6_K)."""
    formats = {p.format for p in parts}
    if len(formats) > 1:
        widest = WeightFormat(max(f.bits for f in formats), min(f.group_size for f in formats))
        parts = [p.widened(widest) for p in parts]
    mins = None if parts[0].min is None else np.concatenate([p.min for p in parts])
    return BlockWeight(np.concatenate([p.codes for p in parts]), np.concatenate([p.scale for p in parts]), mins,
                       parts[0].format)


def pack_codes(codes: np.ndarray, bits: int) -> np.ndarray:
    """uint8 [out, in] -> uint32 [out, in * bits / 32], element r of a word at bits r*bits.."""
    per_word = WORD_BITS // bits
    out_features, in_features = codes.shape
    shifts = np.arange(per_word, dtype=np.uint32) * bits
    words = codes.astype(np.uint32).reshape(out_features, in_features // per_word, per_word) << shifts
    return np.bitwise_or.reduce(words, axis=-1)


def unpack_codes(words: np.ndarray, bits: int) -> np.ndarray:
    """The inverse of pack_codes."""
    shifts = np.arange(WORD_BITS // bits, dtype=np.uint32) * bits
    codes = (words[..., None] >> shifts) & np.uint32((1 << bits) - 1)
    return codes.reshape(words.shape[0], -1).astype(np.uint8)


def _groups(w: np.ndarray, quantizer: str) -> np.ndarray:
    w = np.asarray(w, dtype=np.float32)
    if w.ndim != 2 or w.shape[1] % GROUP_SIZE:
        raise ValueError(f"{quantizer} needs a 2-D weight whose in_features is a multiple of {GROUP_SIZE}, "
                         f"got {w.shape}")
    return w.reshape(w.shape[0], -1, GROUP_SIZE)


def quantize_q4f32_1(w: np.ndarray) -> BlockWeight:
    groups = _groups(w, "q4f32_1")
    scale = np.abs(groups).max(axis=-1) / np.float32(Q4F32_1_ZERO_CODE)
    # An all-zero group has scale 0: divide by 1 instead; its code is then 7, which reads back as exactly 0.
    divisor = np.where(scale == 0, np.float32(1), scale)[..., None]
    codes = np.clip(np.round(groups / divisor + Q4F32_1_ZERO_CODE), 0, 2 * Q4F32_1_ZERO_CODE)
    return BlockWeight(codes.astype(np.uint8).reshape(w.shape), scale, None, Q4F32_1)


def quantize_q4f32_asym(w: np.ndarray) -> BlockWeight:
    groups = _groups(w, "q4f32_asym")
    low, high = groups.min(axis=-1), groups.max(axis=-1)
    scale = (high - low) / np.float32(15)
    # A constant group has scale 0: its codes are 0, which read back as exactly its value.
    divisor = np.where(scale == 0, np.float32(1), scale)[..., None]
    codes = np.clip(np.round((groups - low[..., None]) / divisor), 0, 15)
    return BlockWeight(codes.astype(np.uint8).reshape(w.shape), scale, low, Q4G32)


FLOAT_QUANTIZERS = {"q4f32_1": quantize_q4f32_1, "q4f32_asym": quantize_q4f32_asym}


def round_trip(weights: dict[str, np.ndarray], quantizer: str) -> dict[str, np.ndarray]:
    """What a float quantizer keeps of a model: every weight matrix quantized and read back, 1-D weights as
    they are."""
    quantize = FLOAT_QUANTIZERS[quantizer]
    return {name: quantize(w).dequantize() if w.ndim == 2 else w for name, w in weights.items()}
