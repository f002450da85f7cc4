"""What each architecture folder (compile/<arch>/) provides to the pipeline (compile/registry.py lists them)."""
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from tvm.relax.frontend import nn
from tvm.target import Target

from compile.options import CompileOptions
from models.llama import LlamaConfig
from models.quantization import Weight


@dataclass(frozen=True)
class Architecture:
    name: str  # model_type in mlc-chat-config.json and the library's _metadata, as MLC-LLM names it
    hf_model_types: tuple[str, ...]  # config.json "model_type" values it reads
    config_from_hf: Callable[[dict], LlamaConfig]
    weight_shapes: Callable[[LlamaConfig], dict[str, tuple[int, ...]]]  # every weight by Hugging Face name
    module: Callable[[LlamaConfig, CompileOptions, Target], nn.Module]  # exports the model-library ABI
    params: Callable[[LlamaConfig, dict[str, Weight]], Iterator[tuple[str, Weight]]]  # HF weights -> module's
    # GGUF input: the general.architecture it reads, and the reader (path, keep_blocks) -> (config, weights with HF
    # names: blocks kept, or float32); None where llama.cpp's files of it are not read
    gguf_architecture: str | None = None
    read_gguf: Callable[[Path, bool], tuple[LlamaConfig, dict[str, Weight]]] | None = None
