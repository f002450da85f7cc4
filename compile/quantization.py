"""Quantization modes: a module transform (which layers hold what parameters) plus the matching weight
conversion (models.quantization holds the numpy math, shared with the reference).

q4f32_1: int4 weights in groups of 32 with a float32 scale per group; activations float32. The dequantize
step lives inside the matmul's reduction, so no dequantized weight is ever materialised at run time.
q0f32: float32 weights as they are.
"""
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import numpy as np
from tvm import te
from tvm import tirx as tir
from tvm.relax.frontend import nn
from tvm.relax.frontend.nn import Tensor, op
from tvm.target import Target

from models.quantization import ELEMS_PER_WORD, GROUP_SIZE, MAX_INT, quantize_q4f32_1


def _q4_element(q_weight: te.Tensor, q_scale: te.Tensor, row, col):
    """w[row, col] from the packed layout: element r of a uint32 sits at bits 4r..4r+3, stored as q+7."""
    shift = ((col % ELEMS_PER_WORD) * 4).astype("uint32")
    q = tir.bitwise_and(tir.shift_right(q_weight[row, col // ELEMS_PER_WORD], shift), tir.const(0xF, "uint32"))
    return (q.astype("float32") - tir.const(float(MAX_INT), "float32")) * q_scale[row, col // GROUP_SIZE]


def _q4_matmul_per_weight(x: Tensor, q_weight: nn.Parameter, q_scale: nn.Parameter, out_features: int,
                          in_features: int):
    """x[..., in] @ dequantize(q_weight, q_scale).T -> [..., out], as one kernel that dequantizes each weight
    where it multiplies it (the GPU form: one output per thread reads its weight row once)."""

    def compute(x: te.Tensor, qw: te.Tensor, qs: te.Tensor):
        k = te.reduce_axis((0, in_features), name="k")
        return te.compute(
            (*x.shape[:-1], out_features),
            lambda *i: te.sum(x[(*i[:-1], k)] * _q4_element(qw, qs, i[-1], k), axis=k),
            name="q4_matmul",
        )

    return op.tensor_expr_op(compute, "q4_matmul", [x, q_weight, q_scale])


WORDS_PER_GROUP = GROUP_SIZE // ELEMS_PER_WORD
HALF_WORD = ELEMS_PER_WORD // 2


def _q4_matmul_grouped(x: Tensor, q_weight: nn.Parameter, q_scale: nn.Parameter, out_features: int,
                       in_features: int):
    """The same product in the CPU form, where arithmetic per weight is what costs. Per group of 32 and per
    position l in a packed word, sum float(nibble left in place) * x / 16^(l % 4), then apply the group's scale
    once and its zero point as 7 * scale * sum(x). A word's 8 positions are two 4-lane SIMD vectors that share
    one shift (0 or 16 bits), and the nibble needs no shift back: WebAssembly SIMD shifts take one count."""
    groups = in_features // GROUP_SIZE

    def nibble_in_place(qw: te.Tensor, row, word, lane):
        mask = tir.shift_left(tir.const(0xF, "uint32"), (lane % HALF_WORD * 4).astype("uint32"))
        return tir.bitwise_and(tir.shift_right(qw[row, word], (lane // HALF_WORD * 16).astype("uint32")), mask)

    def compute(x: te.Tensor, qw: te.Tensor, qs: te.Tensor):
        *lead, _ = x.shape
        x_scaled = te.compute(x.shape, lambda *i: x[i] / (1 << (i[-1] % HALF_WORD * 4)).astype("float32"),
                              name="q4_x_scaled")
        k = te.reduce_axis((0, GROUP_SIZE), name="k")
        zero_point = tir.const(MAX_INT / ELEMS_PER_WORD, "float32")  # 7 * sum(x), spread over the 8 lanes
        x_offset = te.compute((*lead, groups), lambda *i: te.sum(
            x[(*i[:-1], i[-1] * GROUP_SIZE + k)] * zero_point, axis=k), name="q4_x_offset")
        w = te.reduce_axis((0, WORDS_PER_GROUP), name="w")
        partial = te.compute((*lead, out_features, groups, ELEMS_PER_WORD), lambda *i: te.sum(
            nibble_in_place(qw, i[-3], i[-2] * WORDS_PER_GROUP + w, i[-1]).astype("float32")
            * x_scaled[(*i[:-3], i[-2] * GROUP_SIZE + w * ELEMS_PER_WORD + i[-1])], axis=w), name="q4_group_partial")
        g = te.reduce_axis((0, groups), name="g")
        lane = te.reduce_axis((0, ELEMS_PER_WORD), name="lane")
        return te.compute((*lead, out_features), lambda *i: te.sum(
            qs[i[-1], g] * (partial[(*i, g, lane)] - x_offset[(*i[:-1], g)]), axis=[g, lane]), name="q4_matmul")

    return op.tensor_expr_op(compute, "q4_matmul", [x, q_weight, q_scale])


def _q4_matmul(x: Tensor, q_weight: nn.Parameter, q_scale: nn.Parameter, out_features: int, in_features: int,
               cpu: bool):
    """The kernel form for the device: grouped on CPUs (native and wasm32), per weight on GPUs."""
    matmul = _q4_matmul_grouped if cpu else _q4_matmul_per_weight
    return matmul(x, q_weight, q_scale, out_features, in_features)


def _check_groupable(in_features: int) -> None:
    if in_features % GROUP_SIZE:
        raise ValueError(f"q4f32_1 needs input features divisible by {GROUP_SIZE}; got {in_features}")


class Q4Linear(nn.Module):
    """`cpu` picks the kernel form (see _q4_matmul)."""

    def __init__(self, in_features: int, out_features: int, cpu: bool):
        _check_groupable(in_features)
        self.in_features, self.out_features, self.cpu = in_features, out_features, cpu
        self.q_weight = nn.Parameter((out_features, in_features // ELEMS_PER_WORD), "uint32")
        self.q_scale = nn.Parameter((out_features, in_features // GROUP_SIZE), "float32")

    def forward(self, x: Tensor) -> Tensor:
        return _q4_matmul(x, self.q_weight, self.q_scale, self.out_features, self.in_features, self.cpu)


class Q4Embedding(nn.Module):
    """A quantized embedding table; `lm_head_forward` reuses it as the tied output projection."""

    def __init__(self, num: int, dim: int, cpu: bool):
        _check_groupable(dim)
        self.num, self.dim, self.cpu = num, dim, cpu
        self.q_weight = nn.Parameter((num, dim // ELEMS_PER_WORD), "uint32")
        self.q_scale = nn.Parameter((num, dim // GROUP_SIZE), "float32")

    def forward(self, ids: Tensor) -> Tensor:
        def compute(ids: te.Tensor, qw: te.Tensor, qs: te.Tensor):
            return te.compute((*ids.shape, self.dim), lambda *i: _q4_element(qw, qs, ids[i[:-1]], i[-1]),
                              name="q4_embedding")

        return op.tensor_expr_op(compute, "q4_embedding", [ids, self.q_weight, self.q_scale])

    def lm_head_forward(self, x: Tensor) -> Tensor:
        return _q4_matmul(x, self.q_weight, self.q_scale, self.num, self.dim, self.cpu)


class _ToQ4(nn.Mutator):
    def __init__(self, cpu: bool):
        self.cpu = cpu

    def visit_module(self, name: str, node: nn.Module):
        if isinstance(node, nn.Linear):
            if node.bias is not None:
                raise ValueError(f"{name}: q4f32_1 does not handle biased linear layers")
            return Q4Linear(node.in_features, node.out_features, self.cpu)
        if isinstance(node, nn.Embedding):
            return Q4Embedding(node.num, node.dim, self.cpu)
        return self.visit(name, node)


@dataclass(frozen=True)
class Quantization:
    name: str

    def quantize_module(self, model: nn.Module, target: Target) -> nn.Module:
        return _ToQ4(cpu=target.kind.name == "llvm").visit("", model) if self.name == "q4f32_1" else model

    def quantize_params(
        self, params: Iterable[tuple[str, np.ndarray]], model: nn.Module
    ) -> Iterator[tuple[str, np.ndarray]]:
        """Convert float32 weights to the parameters `model` (already transformed) declares."""
        declared = {name for name, _ in model.named_parameters()}
        for name, weight in params:
            prefix = name.removesuffix(".weight")
            if f"{prefix}.q_weight" in declared:
                q_weight, q_scale = quantize_q4f32_1(weight)
                yield f"{prefix}.q_weight", q_weight
                yield f"{prefix}.q_scale", q_scale
            else:
                yield name, weight


QUANTIZATIONS = {q.name: q for q in (Quantization("q4f32_1"), Quantization("q0f32"))}


def get_quantization(name: str) -> Quantization:
    try:
        return QUANTIZATIONS[name]
    except KeyError:
        raise ValueError(f"unknown quantization {name!r}; choose one of {', '.join(QUANTIZATIONS)}") from None
