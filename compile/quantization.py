"""Quantization modes: which matrices a bundle holds quantized and how (models.quantization's weight formats),
the module transform that declares their parameters, and the matmul kernels that dequantize them in place.

- gguf (the default for GGUF sources): every matrix keeps the GGUF's own blocks, unchanged, in the weight format
  that holds its block type (models.gguf_blocks.BLOCK_TYPES); float tensors stay float32. No second quantization.
- q4f32_1: MLC-LLM's symmetric 4-bit group quantization of the float32 weights.
- q4f32_asym: 4-bit with a scale and a minimum per group of 32, quantized from the float32 weights.
- q0f32: float32 weights as they are.

The dequantize step lives inside the matmul's reduction, so no dequantized weight is ever materialised at run
time; the kernel form depends on the device (see _quant_matmul).
"""
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
from tvm import te
from tvm import tirx as tir
from tvm.relax.frontend import nn
from tvm.relax.frontend.nn import Tensor, op
from tvm.target import Target

from models.quantization import FLOAT_QUANTIZERS, BlockWeight, Weight, WeightFormat

HALF_WORD_BITS = 16
# Prefill tokens per dequantized weight in the CPU matmul (schedules.QuantMatmulGrouped). Measured in V8 for a
# 576x1536 q4 prefill of 64 tokens: 0.140 ms per token with tiles of 2, 0.111 with 4, 0.095 with 8.
CPU_TOKEN_TILE = 8


def _code_mask(fmt: WeightFormat):
    return tir.const((1 << fmt.bits) - 1, "uint32")


def _dequantized(fmt: WeightFormat, params: list[te.Tensor], row, col):
    """w[row, col] of a packed matrix: code * scale + min, or (code - zero_code) * scale."""
    q_weight, q_scale, *q_min = params
    per_word = fmt.elems_per_word
    shift = ((col % per_word) * fmt.bits).astype("uint32")
    code = tir.bitwise_and(tir.shift_right(q_weight[row, col // per_word], shift), _code_mask(fmt)).astype("float32")
    group = col // fmt.group_size
    if fmt.has_min:
        return code * q_scale[row, group] + q_min[0][row, group]
    return (code - tir.const(float(fmt.zero_code), "float32")) * q_scale[row, group]


def _quant_matmul_per_weight(x: Tensor, params: list[nn.Parameter], fmt: WeightFormat, out_features: int,
                             in_features: int):
    """x[..., in] @ dequantize(params).T -> [..., out], as one kernel that dequantizes each weight where it
    multiplies it (the GPU form: one output per thread reads its weight row once)."""

    def compute(x: te.Tensor, *params: te.Tensor):
        k = te.reduce_axis((0, in_features), name="k")
        return te.compute(
            (*x.shape[:-1], out_features),
            lambda *i: te.sum(x[(*i[:-1], k)] * _dequantized(fmt, list(params), i[-1], k), axis=k),
            name="quant_matmul",
        )

    return op.tensor_expr_op(compute, "quant_matmul", [x, *params])


def padded_tokens(tokens):
    """The CPU matmul's row count: a symbolic number of tokens (prefill) rounded up to whole tiles of
    CPU_TOKEN_TILE, so that the schedule's tile loop needs no bounds predicate. With one, TVM cannot size the
    tile's accumulators to a constant and keeps them in memory: measured in V8, a 576x1536 q4 prefill then took
    0.30 ms per token, against 0.20 with the accumulators in registers (2-token tiles)."""
    if isinstance(tokens, tir.IntImm):
        return tokens
    return (tokens + CPU_TOKEN_TILE - 1) // CPU_TOKEN_TILE * CPU_TOKEN_TILE


def _quant_matmul_grouped(x: Tensor, params: list[nn.Parameter], fmt: WeightFormat, out_features: int,
                          in_features: int):
    """The same product in the CPU form, where arithmetic per weight is what costs. Per group and per position
    l in a packed word, sum float(code left in place) * x / 2^(bits * l'), then apply the group's scale once,
    and its minimum (or zero point) times the group's sum of x. A code needs no shift back, and the lanes of
    one SIMD vector share one shift, because WebAssembly SIMD shifts take one count (per-lane shifts become
    scalar code): the eight 4-bit positions split into the word's two 16-bit halves (shift 0 or 16; l' is the
    position within the half), the four 8-bit ones stay in place (l' = l; up to 0xFF000000, an unsigned
    convert). Either way a code left in place has at most 8 significant bits: exact in float32."""
    per_word, bits, group_size = fmt.elems_per_word, fmt.bits, fmt.group_size
    per_shift = per_word // 2 if bits == 4 else per_word  # positions that share one shift
    words_per_group = group_size // per_word
    groups = in_features // group_size

    def code_in_place(qw: te.Tensor, row, word, lane):
        mask = tir.shift_left(_code_mask(fmt), (lane % per_shift * bits).astype("uint32"))
        return tir.bitwise_and(tir.shift_right(qw[row, word], (lane // per_shift * HALF_WORD_BITS).astype("uint32")),
                               mask)

    def compute(x: te.Tensor, qw: te.Tensor, qs: te.Tensor, *q_min: te.Tensor):
        *batch, tokens, _ = x.shape
        lead = (*batch, padded_tokens(tokens))

        def x_at(*i):  # zero in the padding rows
            return x[i] if lead[-1] is tokens else tir.if_then_else(i[-2] < tokens, x[i], tir.const(0, "float32"))

        x_scaled = te.compute((*lead, in_features),
                              lambda *i: x_at(*i) / (1 << (i[-1] % per_shift * bits)).astype("float32"),
                              name="quant_x_scaled")
        k = te.reduce_axis((0, group_size), name="k")
        # The group's sum of x, spread over the word's lanes; times the zero point where the format has one.
        spread = tir.const((fmt.zero_code or 1) / per_word, "float32")
        x_offset = te.compute((*lead, groups), lambda *i: te.sum(
            x_at(*i[:-1], i[-1] * group_size + k) * spread, axis=k), name="quant_x_offset")
        w = te.reduce_axis((0, words_per_group), name="w")
        partial = te.compute((*lead, out_features, groups, per_word), lambda *i: te.sum(
            code_in_place(qw, i[-3], i[-2] * words_per_group + w, i[-1]).astype("float32")
            * x_scaled[(*i[:-3], i[-2] * group_size + w * per_word + i[-1])], axis=w), name="quant_group_partial")
        g = te.reduce_axis((0, groups), name="g")
        lane = te.reduce_axis((0, per_word), name="lane")

        def term(*i):
            p, offset, scale = partial[(*i, g, lane)], x_offset[(*i[:-1], g)], qs[i[-1], g]
            return scale * p + q_min[0][i[-1], g] * offset if fmt.has_min else scale * (p - offset)

        matmul = te.compute((*lead, out_features), lambda *i: te.sum(term(*i), axis=[g, lane]), name="quant_matmul")
        if lead[-1] is tokens:
            return matmul
        return te.compute((*batch, tokens, out_features), lambda *i: matmul[i], name="quant_matmul_rows")

    return op.tensor_expr_op(compute, "quant_matmul", [x, *params])


def _quant_matmul(x: Tensor, params: list[nn.Parameter], fmt: WeightFormat, out_features: int, in_features: int,
                  cpu: bool):
    """The kernel form for the device: grouped on CPUs (native and wasm32), per weight on GPUs."""
    matmul = _quant_matmul_grouped if cpu else _quant_matmul_per_weight
    return matmul(x, params, fmt, out_features, in_features)


class _QuantParams(nn.Module):
    """The packed parameters of one matrix [rows, cols] in format `fmt`."""

    def __init__(self, rows: int, cols: int, fmt: WeightFormat, cpu: bool):
        if cols % fmt.group_size:
            raise ValueError(f"{fmt.name} needs input features divisible by {fmt.group_size}; got {cols}")
        self.fmt, self.cpu = fmt, cpu
        self.q_weight = nn.Parameter((rows, cols // fmt.elems_per_word), "uint32")
        self.q_scale = nn.Parameter((rows, cols // fmt.group_size), "float32")
        if fmt.has_min:
            self.q_min = nn.Parameter((rows, cols // fmt.group_size), "float32")

    def params(self) -> list[nn.Parameter]:
        return [self.q_weight, self.q_scale, *([self.q_min] if self.fmt.has_min else [])]


class QuantLinear(_QuantParams):
    """A quantized matrix, and its float32 bias where the layer has one."""

    def __init__(self, in_features: int, out_features: int, fmt: WeightFormat, cpu: bool, bias: bool = False):
        super().__init__(out_features, in_features, fmt, cpu)
        self.in_features, self.out_features = in_features, out_features
        self.bias = nn.Parameter((out_features,), "float32") if bias else None

    def forward(self, x: Tensor) -> Tensor:
        y = _quant_matmul(x, self.params(), self.fmt, self.out_features, self.in_features, self.cpu)
        return y if self.bias is None else y + self.bias


class QuantEmbedding(_QuantParams):
    """A quantized embedding table; `lm_head_forward` reuses it as the tied output projection."""

    def __init__(self, num: int, dim: int, fmt: WeightFormat, cpu: bool):
        super().__init__(num, dim, fmt, cpu)
        self.num, self.dim = num, dim

    def forward(self, ids: Tensor) -> Tensor:
        def compute(ids: te.Tensor, *params: te.Tensor):
            return te.compute((*ids.shape, self.dim),
                              lambda *i: _dequantized(self.fmt, list(params), ids[i[:-1]], i[-1]),
                              name="quant_embedding")

        return op.tensor_expr_op(compute, "quant_embedding", [ids, *self.params()])

    def lm_head_forward(self, x: Tensor) -> Tensor:
        return _quant_matmul(x, self.params(), self.fmt, self.num, self.dim, self.cpu)


class _Quantize(nn.Mutator):
    def __init__(self, formats: dict[str, WeightFormat], cpu: bool):
        self.formats, self.cpu = formats, cpu

    def visit_module(self, name: str, node: nn.Module):
        fmt = self.formats.get(name)
        if fmt is None:
            return self.visit(name, node)
        if isinstance(node, nn.Linear):
            return QuantLinear(node.in_features, node.out_features, fmt, self.cpu, bias=node.bias is not None)
        if isinstance(node, nn.Embedding):
            return QuantEmbedding(node.num, node.dim, fmt, self.cpu)
        raise ValueError(f"{name}: a {type(node).__name__} cannot hold {fmt.name} weights")


def quantize_module(model: nn.Module, formats: dict[str, WeightFormat], target: Target) -> nn.Module:
    """`model` with the layers of `formats` quantized, in the kernel form for `target`'s device."""
    return _Quantize(formats, cpu=target.kind.name == "llvm").visit("", model)


def _packed(params: list[tuple[str, Weight]]) -> Iterator[tuple[str, np.ndarray]]:
    """The arrays the quantized module declares: each BlockWeight as its q_weight, q_scale (and q_min)."""
    for name, w in params:
        if isinstance(w, BlockWeight):
            prefix = name.removesuffix(".weight")
            for suffix, array in w.packed().items():
                yield f"{prefix}.{suffix}", array
        else:
            yield name, w


@dataclass(frozen=True)
class QuantizedParams:
    formats: dict[str, WeightFormat]  # every quantized matrix's format, by the name of the module that holds it
    arrays: list[tuple[str, np.ndarray]]  # every parameter as the quantized module declares it


@dataclass(frozen=True)
class Quantization:
    name: str
    keeps_source_blocks: bool  # the weights come as the GGUF's own blocks, not dequantized to float32

    def quantize(self, params: Iterable[tuple[str, Weight]]) -> QuantizedParams:
        """The formats for quantize_module and the arrays for the bundle (or a native build)."""
        stored = list(self._stored(params))
        formats = {name.removesuffix(".weight"): w.format for name, w in stored if isinstance(w, BlockWeight)}
        return QuantizedParams(formats, list(_packed(stored)))

    def _stored(self, params: Iterable[tuple[str, Weight]]) -> Iterator[tuple[str, Weight]]:
        """Parameters as this mode stores them: BlockWeights for quantized matrices, float32 arrays otherwise."""
        quantize = FLOAT_QUANTIZERS.get(self.name)
        for name, w in params:
            if quantize is not None and isinstance(w, np.ndarray) and w.ndim == 2:
                yield name, quantize(w)
            elif isinstance(w, BlockWeight) and not self.keeps_source_blocks:
                raise ValueError(f"{name}: {self.name} quantizes float32 weights; got {w.format.name} blocks")
            else:
                yield name, w


QUANTIZATIONS = {q.name: q for q in (Quantization("gguf", keeps_source_blocks=True),
                                     Quantization("q4f32_1", keeps_source_blocks=False),
                                     Quantization("q4f32_asym", keeps_source_blocks=False),
                                     Quantization("q0f32", keeps_source_blocks=False))}
DEFAULT_QUANTIZATION = "gguf"  # for a GGUF source
FLOAT_SOURCE_QUANTIZATION = "q4f32_1"  # for float weights (a Hugging Face checkpoint): MLC's default


def get_quantization(name: str) -> Quantization:
    try:
        return QUANTIZATIONS[name]
    except KeyError:
        raise ValueError(f"unknown quantization {name!r}; choose one of {', '.join(QUANTIZATIONS)}") from None
