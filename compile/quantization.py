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

from models.quantization import ELEMS_PER_WORD, GROUP_SIZE, MAX_INT, quantize_q4f32_1


def _q4_element(q_weight: te.Tensor, q_scale: te.Tensor, row, col):
    """w[row, col] from the packed layout: element r of a uint32 sits at bits 4r..4r+3, stored as q+7."""
    shift = ((col % ELEMS_PER_WORD) * 4).astype("uint32")
    q = tir.bitwise_and(tir.shift_right(q_weight[row, col // ELEMS_PER_WORD], shift), tir.const(0xF, "uint32"))
    return (q.astype("float32") - tir.const(float(MAX_INT), "float32")) * q_scale[row, col // GROUP_SIZE]


def _q4_matmul(x: Tensor, q_weight: nn.Parameter, q_scale: nn.Parameter, out_features: int, in_features: int):
    """x[..., in] @ dequantize(q_weight, q_scale).T -> [..., out], as one kernel."""

    def compute(x: te.Tensor, qw: te.Tensor, qs: te.Tensor):
        k = te.reduce_axis((0, in_features), name="k")
        return te.compute(
            (*x.shape[:-1], out_features),
            lambda *i: te.sum(x[(*i[:-1], k)] * _q4_element(qw, qs, i[-1], k), axis=k),
            name="q4_matmul",
        )

    return op.tensor_expr_op(compute, "q4_matmul", [x, q_weight, q_scale])


def _check_groupable(in_features: int) -> None:
    if in_features % GROUP_SIZE:
        raise ValueError(f"q4f32_1 needs input features divisible by {GROUP_SIZE}; got {in_features}")


class Q4Linear(nn.Module):
    def __init__(self, in_features: int, out_features: int):
        _check_groupable(in_features)
        self.in_features, self.out_features = in_features, out_features
        self.q_weight = nn.Parameter((out_features, in_features // ELEMS_PER_WORD), "uint32")
        self.q_scale = nn.Parameter((out_features, in_features // GROUP_SIZE), "float32")

    def forward(self, x: Tensor) -> Tensor:
        return _q4_matmul(x, self.q_weight, self.q_scale, self.out_features, self.in_features)


class Q4Embedding(nn.Module):
    """A quantized embedding table; `lm_head_forward` reuses it as the tied output projection."""

    def __init__(self, num: int, dim: int):
        _check_groupable(dim)
        self.num, self.dim = num, dim
        self.q_weight = nn.Parameter((num, dim // ELEMS_PER_WORD), "uint32")
        self.q_scale = nn.Parameter((num, dim // GROUP_SIZE), "float32")

    def forward(self, ids: Tensor) -> Tensor:
        def compute(ids: te.Tensor, qw: te.Tensor, qs: te.Tensor):
            return te.compute((*ids.shape, self.dim), lambda *i: _q4_element(qw, qs, ids[i[:-1]], i[-1]),
                              name="q4_embedding")

        return op.tensor_expr_op(compute, "q4_embedding", [ids, self.q_weight, self.q_scale])

    def lm_head_forward(self, x: Tensor) -> Tensor:
        return _q4_matmul(x, self.q_weight, self.q_scale, self.num, self.dim)


class _ToQ4(nn.Mutator):
    def visit_module(self, name: str, node: nn.Module):
        if isinstance(node, nn.Linear):
            if node.bias is not None:
                raise ValueError(f"{name}: q4f32_1 does not handle biased linear layers")
            return Q4Linear(node.in_features, node.out_features)
        if isinstance(node, nn.Embedding):
            return Q4Embedding(node.num, node.dim)
        return self.visit(name, node)


@dataclass(frozen=True)
class Quantization:
    name: str

    def quantize_module(self, model: nn.Module) -> nn.Module:
        return _ToQ4().visit("", model) if self.name == "q4f32_1" else model

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
