"""The tiny Qwen2 and Qwen3 checkpoints of tests/tiny_checkpoints.py as llama.cpp's converter writes them into a
GGUF (general.architecture qwen2 / qwen3): its tensor names, Q/K rows unpermuted (its RoPE for Qwen is
NEOX-style), Qwen2's q/k/v biases and Qwen3's q/k norms as tensors of their own, float32; with a tokenizer of
tests/bpe_ggufs.py where asked (the vocabulary then that tokenizer's size)."""
from pathlib import Path

import gguf

from compile.pipeline import load_hf_source
from models.llama import GGUF_BLOCK_TO_HF, LlamaConfig, gguf_name
from models.synthetic import add_decoder_metadata
from tests.bpe_ggufs import add_tokenizer
from tests.tiny_checkpoints import write_checkpoint

IN_BLOCK = GGUF_BLOCK_TO_HF | {"attn_q_norm": "self_attn.q_norm", "attn_k_norm": "self_attn.k_norm"}  # Qwen3's too


def write_qwen_gguf(name: str, directory: Path, seed: int,
                    tokenizer: dict | None = None) -> tuple[Path, LlamaConfig, dict]:
    """(directory/tiny-NAME.gguf, the checkpoint's config, its float32 weights); `tokenizer`: a recorded
    tokenizer's "gguf" entry (tests/bpe_ggufs.py)."""
    changes = {"vocab_size": len(tokenizer["tokens"])} if tokenizer else None
    config, weights = load_hf_source(write_checkpoint(name, directory / "checkpoint", seed, changes))
    path = directory / f"tiny-{name}.gguf"
    writer = gguf.GGUFWriter(path, name)
    add_decoder_metadata(writer, config)
    writer.add_key_length(config.head_dim)
    writer.add_value_length(config.head_dim)
    if tokenizer:
        add_tokenizer(writer, tokenizer)
    for hf, w in weights.items():
        writer.add_tensor(gguf_name(hf, in_block=IN_BLOCK), w)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path, config, weights
