"""A Gemma 2 GGUF (general.architecture "gemma2", llama.cpp's layout: Gemma 3's tensors less the q/k norms, each
RMSNorm as 1 + w) -> Gemma2Config and weights with Hugging Face names, read as compile/gemma3/gguf.py reads Gemma 3's.

The file has the soft caps, the window and no layer pattern or query scalar: llama.cpp alternates sliding and global
layers, and scales the scores by head_dim^-0.5 except for the 27B model (46 layers: (hidden / heads)^-0.5), as its
query_pre_attn_scalar says.
"""
from pathlib import Path

from gguf import GGUFReader

from compile.gemma2.config import DEFAULTS, SLIDING_PATTERN, Gemma2Config
from compile.gemma3.config import pattern_layer_types
from compile.gemma3.gguf import gemma_gguf_fields, read_gemma_gguf
from models.gguf_file import gguf_value
from models.quantization import Weight

ARCHITECTURE = "gemma2"
LAYERS_27B = 46


def gemma2_config_from_gguf(reader: GGUFReader) -> Gemma2Config:
    def value(key, default_key):  # llama.cpp's defaults, where the file has none, are transformers'
        return gguf_value(reader, f"{ARCHITECTURE}.{key}", DEFAULTS[default_key])

    fields = gemma_gguf_fields(reader, ARCHITECTURE)
    layers, rope_theta = fields["num_hidden_layers"], value("rope.freq_base", "rope_theta")
    scalar_dim = fields["hidden_size"] // fields["num_attention_heads"] if layers == LAYERS_27B else fields["head_dim"]
    return Gemma2Config(
        **fields,
        rope_theta=rope_theta,
        rope_local_theta=rope_theta,
        sliding_window=value("attention.sliding_window", "sliding_window"),
        layer_types=pattern_layer_types(layers, SLIDING_PATTERN),
        query_pre_attn_scalar=float(scalar_dim),
        attn_logit_softcapping=value("attn_logit_softcapping", "attn_logit_softcapping"),
        final_logit_softcapping=value("final_logit_softcapping", "final_logit_softcapping"),
    )


def read_gemma2_gguf(path: Path, keep_blocks: bool) -> tuple[Gemma2Config, dict[str, Weight]]:
    return read_gemma_gguf(path, keep_blocks, ARCHITECTURE, gemma2_config_from_gguf)
