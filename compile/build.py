"""Model -> Relax IRModule with the full model-library ABI -> built library for one target."""
import json
import math
from collections import Counter
from dataclasses import dataclass

import tvm
from tvm import relax as rx
from tvm.relax.backend.cpu_generic import pipeline as cpu_generic
from tvm.relax.backend.gpu_generic import pipeline as gpu_generic
from tvm.s_tir import dlight as dl

from compile.layers import sliding_window
from compile.llama.cpu_attention import replace_cpu_attention_kernels
from compile.llama.merge_state import replace_merge_state_kernel
from compile.llama.soft_cap import soft_cap_gpu_attention
from compile.logits import add_logits_functions
from compile.options import CompileOptions
from compile.quantization import quantize_module
from compile.registry import get_architecture
from compile.schedules import QuantMatmulGrouped, QuantMatmulPerThread
from compile.webgpu_math import use_exact_webgpu_trig
from models.llama import LlamaConfig
from models.quantization import WeightFormat

NATIVE_CPU_HOST = {"kind": "llvm"}


@dataclass(frozen=True)
class ParamSpec:
    name: str
    shape: tuple[int, ...]
    dtype: str

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * tvm.runtime.DataType(self.dtype).bits // 8


@dataclass(frozen=True)
class ExportedModel:
    mod: tvm.IRModule
    target: tvm.target.Target
    params: list[ParamSpec]
    metadata: dict


def native_cpu_target() -> tvm.target.Target:
    """This machine's CPU, with every instruction set it has (AVX2 here)."""
    cpu = tvm.target.codegen.llvm_get_system_cpu()
    return tvm.target.Target({**NATIVE_CPU_HOST, "mcpu": cpu})


def weight_format_counts(formats: dict[str, WeightFormat]) -> dict[str, int]:
    """How many matrices each weight format holds, e.g. {"q4g32": 120, "q8g32": 1}."""
    return dict(sorted(Counter(fmt.name for fmt in formats.values()).items()))


def _metadata(config: LlamaConfig, options: CompileOptions, quantization: str,
              formats: dict[str, WeightFormat], params: list[ParamSpec], kv_cache_layers: int) -> dict:
    kv_bytes_per_token = 2 * kv_cache_layers * config.num_key_value_heads * config.head_dim * 4
    return {
        "model_type": config.model_type,
        "quantization": quantization,
        "weight_formats": weight_format_counts(formats),
        "context_window_size": options.context_window_size,
        "prefill_chunk_size": options.prefill_chunk_size,
        "sliding_window_size": -1,
        "attention_sink_size": -1,
        "tensor_parallel_shards": 1,
        "pipeline_parallel_stages": 1,
        "kv_state_kind": "kv_cache",
        "max_batch_size": 1,
        "params": [{"name": p.name, "shape": list(p.shape), "dtype": p.dtype} for p in params],
        "memory_usage": {
            "params_bytes": sum(p.nbytes for p in params),
            "kv_cache_bytes": kv_bytes_per_token * options.context_window_size,
        },
    }


def _attach_metadata(mod: tvm.IRModule, metadata: dict) -> tvm.IRModule:
    """`_metadata()` returns the JSON string the browser engine reads first (MLC's convention)."""
    bb = rx.BlockBuilder(mod)
    with bb.function("_metadata", params=[]):
        bb.emit_func_output(tvm.ir.StringImm(json.dumps(metadata, sort_keys=True)))
    return bb.finalize()


def _attach_bounds(mod: tvm.IRModule, options: CompileOptions) -> tvm.IRModule:
    """Upper bounds of the symbolic lengths let memory planning reserve fixed buffers once."""
    bounds = {"seq_len": options.prefill_chunk_size}
    for name in ("embed", "prefill"):
        mod[name] = mod[name].with_attr("tir_var_upper_bound", bounds).with_attr("tir_non_negative_var", ["seq_len"])
    return mod


def replace_kv_cache_kernels(mod: tvm.IRModule, num_kv_heads: int, num_q_heads: int, head_dim: int,
                             target: tvm.target.Target, sliding_window: int | None = None,
                             softcap: float | None = None) -> None:
    """Our kernels in place of some of TVM's paged KV cache (exported for `target` into `mod`): on a GPU, the merge
    of attention states, which races (merge_state.py), and TVM's attention kernels soft-capped (soft_cap.py); on a
    CPU, the attention kernels, which are scalar (cpu_attention.py). `softcap`: the model's attention logit soft
    cap, which TVM's kernels have none of."""
    if target.kind.name == "llvm":
        replace_cpu_attention_kernels(mod, num_kv_heads, num_q_heads, head_dim, sliding_window, softcap)
    else:
        replace_merge_state_kernel(mod, num_q_heads, head_dim, "float32", target)
        if softcap:
            soft_cap_gpu_attention(mod, softcap)


def attention_softcap(config: LlamaConfig) -> float | None:
    """The soft cap of the model's attention scores (Gemma 2's), or None when it has none."""
    return getattr(config, "attn_logit_softcapping", None)


def export_model(config: LlamaConfig, options: CompileOptions, quantization: str, formats: dict[str, WeightFormat],
                 target: tvm.target.Target) -> ExportedModel:
    """`formats` names the quantized layers (QuantizedParams.formats); the rest stay float32."""
    module = get_architecture(config.model_type).module(config, options, target)
    model = quantize_module(module, formats, target)
    mod, named_params = model.export_tvm(spec=model.export_spec())
    replace_kv_cache_kernels(mod, config.num_key_value_heads, config.num_attention_heads, config.head_dim, target,
                             sliding_window(config, options), attention_softcap(config))
    params = [ParamSpec(name, tuple(int(d) for d in p.shape), p.dtype) for name, p in named_params]
    metadata = _metadata(config, options, quantization, formats, params, module.kv_cache_layers())
    mod = _attach_bounds(_attach_metadata(add_logits_functions(mod, target), metadata), options)
    return ExportedModel(mod, target, params, metadata)


def is_wasm(target: tvm.target.Target) -> bool:
    host = target.host or target
    return str(host.attrs.get("mtriple", "")).startswith("wasm32")


def _pipeline(target: tvm.target.Target) -> tvm.transform.Pass:
    """TVM's generic pipeline for the target's kind, with our schedules tried before dlight's (GPU)."""
    if target.kind.name == "webgpu":
        use_exact_webgpu_trig()  # the rotary embedding's sin and cos
        backend = gpu_generic
        rules = [QuantMatmulPerThread(), dl.gpu.Matmul(), dl.gpu.GEMV(), dl.gpu.Reduction(), dl.gpu.GeneralReduction(),
                 dl.gpu.Fallback()]
    else:
        backend, rules = cpu_generic, [QuantMatmulGrouped()]

    @tvm.transform.module_pass(opt_level=0)
    def pipeline(mod: tvm.IRModule, _ctx) -> tvm.IRModule:
        legalize = [
            rx.transform.LegalizeOps(),
            rx.transform.AnnotateTIROpPattern(),
            rx.transform.FoldConstant(),
            rx.transform.FuseOps(),
            rx.transform.FuseTIR(),
            dl.ApplyDefaultSchedule(*rules),
        ]
        with target:
            return tvm.transform.Sequential(
                backend.library_dispatch_passes(target) + legalize
                + backend.dataflow_lower_passes(target) + backend.finalize_passes(target)
            )(mod)

    return pipeline


def build(exported: ExportedModel) -> tvm.runtime.Executable:
    """Compile for the target the model was exported for. Browser libraries are system libs: tvmjs looks
    their functions up in the linked wasm instead of loading shared objects."""
    target = exported.target
    return rx.build(exported.mod, target=target, system_lib=is_wasm(target), relax_pipeline=_pipeline(target))
