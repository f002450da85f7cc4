"""Running a native CPU build of a model library in Python, the way the browser engine drives it:
embed -> prefill in chunks -> decode one token at a time, over a real paged KV cache."""
import json
from collections.abc import Mapping

import numpy as np
import tvm
from tvm import relax as rx

from compile.build import build, export_model, native_cpu_target
from compile.options import CompileOptions
from compile.quantization import get_quantization
from compile.registry import get_architecture
from models.llama import LlamaConfig

PAGE_SIZE = 16  # tokens per KV cache page, as WebLLM uses
SEQUENCE_ID = 0  # one conversation at a time


class NativeModel:
    def __init__(self, executable: tvm.runtime.Executable, params: Mapping[str, np.ndarray]):
        self.device = tvm.cpu()
        self.vm = rx.VirtualMachine(executable, self.device)
        self.metadata = json.loads(str(self.vm["_metadata"]()))
        self.prefill_chunk_size = self.metadata["prefill_chunk_size"]
        self.context_window_size = self.metadata["context_window_size"]
        self.params = [tvm.runtime.tensor(np.ascontiguousarray(params[p["name"]]), self.device)
                       for p in self.metadata["params"]]
        self._add_sequence = tvm.get_global_func("vm.builtin.kv_state_add_sequence")
        self._begin_forward = tvm.get_global_func("vm.builtin.kv_state_begin_forward")
        self._end_forward = tvm.get_global_func("vm.builtin.kv_state_end_forward")
        self.reset()

    def reset(self) -> None:
        """Forget the conversation: a fresh KV cache holding one empty sequence."""
        self.kv_cache = self.vm["create_tir_paged_kv_cache"](
            tvm.runtime.ShapeTuple([1]), tvm.runtime.ShapeTuple([self.context_window_size]),
            tvm.runtime.ShapeTuple([self.prefill_chunk_size]), tvm.runtime.ShapeTuple([PAGE_SIZE]),
            tvm.runtime.ShapeTuple([0]),
        )
        self._add_sequence(self.kv_cache, SEQUENCE_ID)
        self.seq_len = 0

    def _check_room(self, new_tokens: int) -> None:
        if self.seq_len + new_tokens > self.context_window_size:
            raise ValueError(f"{self.seq_len + new_tokens} tokens exceed the context window "
                             f"of {self.context_window_size}")

    def _forward(self, function: str, token_ids: list[int]) -> np.ndarray:
        ids = tvm.runtime.tensor(np.array(token_ids, dtype=np.int32), self.device)
        embeds = self.vm["embed"](ids, self.params)
        embeds = embeds._create_view((1, len(token_ids), embeds.shape[-1]))  # [seq, h] -> [1, seq, h]
        self._begin_forward(self.kv_cache, tvm.runtime.ShapeTuple([SEQUENCE_ID]),
                            tvm.runtime.ShapeTuple([len(token_ids)]))
        logits, self.kv_cache = self.vm[function](embeds, self.kv_cache, self.params)
        self._end_forward(self.kv_cache)
        self.seq_len += len(token_ids)
        return logits.numpy().reshape(-1)

    def prefill(self, token_ids: list[int]) -> np.ndarray:
        """Logits [vocab] after the last of `token_ids`, fed in chunks of at most prefill_chunk_size."""
        self._check_room(len(token_ids))
        for start in range(0, len(token_ids), self.prefill_chunk_size):
            logits = self._forward("prefill", list(token_ids[start:start + self.prefill_chunk_size]))
        return logits

    def decode_one_token(self, token_id: int) -> np.ndarray:
        self._check_room(1)
        return self._forward("decode", [token_id])

    def decode_n_tokens(self, logits: np.ndarray, n: int, stop_ids=()) -> list[int]:
        """Greedy continuation from `logits`: up to n tokens, ending early after a stop id."""
        tokens = []
        for _ in range(n):
            token = int(np.argmax(logits))
            tokens.append(token)
            if token in stop_ids or len(tokens) == n:
                break
            logits = self.decode_one_token(token)
        return tokens

    def generate_greedy(self, prompt_ids: list[int], max_new_tokens: int, stop_ids=()) -> list[int]:
        self.reset()
        return self.decode_n_tokens(self.prefill(prompt_ids), max_new_tokens, stop_ids)


def build_native_model(config: LlamaConfig, weights: dict, quantization: str,
                       options: CompileOptions = CompileOptions()) -> NativeModel:
    """The model library for this CPU with its weights, as compile_bundle builds it for the browser. `weights`
    come as compile.pipeline.load_source gives them for `quantization` (blocks for gguf, float32 otherwise)."""
    params = get_architecture(config.model_type).params(config, weights)
    quantized = get_quantization(quantization).quantize(params)
    exported = export_model(config, options, quantization, quantized.formats, native_cpu_target())
    return NativeModel(build(exported), dict(quantized.arrays))
