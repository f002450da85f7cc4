"""A bundle's model in a sandbox: the VM, the weights in the library's memory and one sequence in TVM's paged KV
cache (embed -> prefill in chunks -> decode), as web/src/engine/tvm-model.js drives it in the tab. It has the
engine's LanguageModel shape (generation.py): `tokens`, `prefill_chunk_size`, truncate(), prefill(), decode()."""
import json
import struct
import time
from pathlib import Path

import numpy as np

from compile.bundle import Bundle
from .sandbox import CACHE_DIR, DEFAULT_CALL_TIMEOUT_S, DEFAULT_MEMORY_LIMIT, LibrarySandbox, compiled_module
from .tvm_ffi import CPU, TVMFFI

PAGE_SIZE = 16  # tokens per KV cache page, as the tab's engine (and WebLLM) use
SEQUENCE_ID = 0
POOLED_ALLOCATOR = 2


# The relaxed-SIMD build first (fused multiply-adds: faster prefill), then the SIMD128 one (bundles from before it).
CPU_LIBRARY_SUFFIXES = ("-wasm32-relaxed.wasm", "-wasm32.wasm")


def cpu_library_path(bundle: Bundle) -> Path:
    for suffix in CPU_LIBRARY_SUFFIXES:
        name = next((f["path"] for f in bundle.manifest["files"] if f["path"].endswith(suffix)), None)
        if name is not None:
            return bundle.path / name
    raise ValueError(f"bundle {bundle.bundle_id} has no CPU library (*-wasm32.wasm)")


class SandboxModel:
    @classmethod
    def load(cls, bundle: Bundle, memory_limit: int = DEFAULT_MEMORY_LIMIT,
             call_timeout_s: float = DEFAULT_CALL_TIMEOUT_S, cache_dir: Path | None = CACHE_DIR) -> "SandboxModel":
        """`cache_dir`: where compiled modules are kept (None: compile every time)."""
        started = time.perf_counter()
        module, cached = compiled_module(cpu_library_path(bundle), cache_dir)
        compiled = time.perf_counter()
        model = cls(LibrarySandbox(module, memory_limit, call_timeout_s), bundle)
        model.load_times = {"module_s": compiled - started, "module_from_cache": cached,
                            "instantiate_and_weights_s": time.perf_counter() - compiled}
        return model

    def __init__(self, sandbox: LibrarySandbox, bundle: Bundle):
        self.sandbox = sandbox
        ffi = self.ffi = TVMFFI(sandbox)
        system_lib = ffi.call_global("ffi.SystemLib")
        self.vm = ffi.call(ffi.module_function(system_lib, "vm_load_executable"))
        ffi.call(ffi.module_function(self.vm, "vm_initialization"), CPU, 0, POOLED_ALLOCATOR, CPU, 0, POOLED_ALLOCATOR)
        self.metadata = json.loads(ffi.call(ffi.module_function(self.vm, "_metadata")))
        self.context_window_size = self.metadata["context_window_size"]
        self.prefill_chunk_size = self.metadata["prefill_chunk_size"]
        self.params = self._load_params(bundle)
        self.functions = {name: ffi.module_function(self.vm, name)
                          for name in ("embed", "prefill", "decode", "create_tir_paged_kv_cache")}
        self._create_kv_cache()

    def _load_params(self, bundle: Bundle):
        ffi = self.ffi
        cache = json.loads((bundle.path / "tensor-cache.json").read_text(encoding="utf-8"))
        by_name = {}
        try:
            for shard in cache["records"]:
                data = (bundle.path / shard["dataPath"]).read_bytes()
                for record in shard["records"]:
                    if record["format"] != "raw":
                        raise ValueError(f"tensor-cache.json: {record['name']} has format {record['format']}")
                    tensor = by_name[record["name"]] = ffi.empty(record["shape"], record["dtype"])
                    ffi.write_tensor(tensor, data[record["byteOffset"]:record["byteOffset"] + record["nbytes"]])
            missing = [p["name"] for p in self.metadata["params"] if p["name"] not in by_name]
            if missing:
                raise ValueError(f"the weights lack {len(missing)} parameters the library needs ({missing[0]}, ...)")
            return ffi.call_global("ffi.Array", *[by_name[p["name"]] for p in self.metadata["params"]])
        finally:
            ffi.free(*by_name.values())  # the array holds its own references

    def _create_kv_cache(self) -> None:
        """The paged KV cache holding one empty sequence. Made once: a second one does not reuse the first's freed
        memory (measured: the library's memory grew from 555 to 1,085 MiB when the cache was made again)."""
        ffi = self.ffi
        shapes = [ffi.shape([v]) for v in (1, self.context_window_size, self.prefill_chunk_size, PAGE_SIZE, 0)]
        self.kv_cache = ffi.call(self.functions["create_tir_paged_kv_cache"], *shapes)
        ffi.free(*shapes)
        ffi.call_global("vm.builtin.kv_state_add_sequence", self.kv_cache, SEQUENCE_ID)
        self.tokens: list[int] = []

    def truncate(self, length: int) -> None:
        """Keep only the first `length` tokens of the sequence."""
        if length >= len(self.tokens):
            return
        self.ffi.call_global("vm.builtin.kv_state_popn", self.kv_cache, SEQUENCE_ID, len(self.tokens) - length)
        del self.tokens[length:]

    def prefill(self, ids: list[int]) -> np.ndarray:
        return self._forward(self.functions["prefill"], ids)

    def decode(self, token: int) -> np.ndarray:
        return self._forward(self.functions["decode"], [token])

    def _forward(self, step, ids: list[int]) -> np.ndarray:
        """One step; the logits after the last token (float32, vocabulary-long). After a failed step the cache's
        state is unknown: the caller replaces the whole sandbox (ServedModel.recover)."""
        ffi = self.ffi
        objects = []
        try:
            tokens = ffi.empty([len(ids)], "int32")
            objects.append(tokens)
            ffi.write_tensor(tokens, struct.pack(f"<{len(ids)}i", *ids))
            embeds = ffi.call(self.functions["embed"], tokens, self.params)
            objects.append(embeds)
            hidden = ffi.tensor_data(embeds)[1][-1]
            sequences, lengths, view_shape = ffi.shape([SEQUENCE_ID]), ffi.shape([len(ids)]), ffi.shape([1, len(ids), hidden])
            objects += [sequences, lengths, view_shape]
            ffi.call_global("vm.builtin.kv_state_begin_forward", self.kv_cache, sequences, lengths)
            view = ffi.call_global("runtime.TVMTensorCreateView", embeds, view_shape, "float32", 0)
            objects.append(view)
            output = ffi.call(step, view, self.kv_cache, self.params)
            objects.append(output)
            ffi.call_global("vm.builtin.kv_state_end_forward", self.kv_cache)
            logits = ffi.call_global("ffi.ArrayGetItem", output, 0)
            objects.append(logits)
            array = ffi.read_float32(logits)
            values = array.reshape(-1, array.shape[-1])[-1].copy()
        finally:
            ffi.free(*objects)
        self.tokens.extend(ids)
        return values
