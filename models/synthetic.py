"""python -m models.synthetic SIZES [--out DIR] [--seed N]: GGUF files of real model shapes with random weights.

Speed and memory do not depend on the weights' values, so a model of Qwen2.5-0.5B's, Llama-3.2-1B's,
Qwen2.5-1.5B's or Llama-3.2-3B's dimensions, Llama-shaped (no qkv bias, no RoPE scaling), measures what the real
one would. The weights are written directly as the default model's GGUF blocks (SmolLM2's: Q4_1 matrices, a
Q8_0 token embedding, float32 norms), from random codes and scales, seeded per tensor: the same seed gives the
same file, and no size is ever held in float32. The tokenizer is SmolLM2's, padded to the vocabulary size with
plain placeholder tokens that no text encodes to. One GGUF is the single source of both engines' weights:
`python -m compile FILE.gguf` keeps its blocks as they are, and llama.cpp (wllama) reads the file itself.
"""
import argparse
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from gguf import GGMLQuantizationType, GGUFWriter

from models.fetch import fetch_gguf
from models.gguf_blocks import BLOCK_TYPES
from models.gguf_file import gguf_value, open_gguf
from models.llama import LlamaConfig
from models.registry import get_model

TOKENIZER_MODEL = "smollm2-135m-instruct"
MATRIX_TYPE, EMBEDDING_TYPE = GGMLQuantizationType.Q4_1, GGMLQuantizationType.Q8_0  # as SmolLM2's GGUF
NORMAL_TOKEN = 1  # llama.cpp's LLAMA_TOKEN_TYPE_NORMAL: a placeholder is a plain vocabulary entry, not added text
CONTEXT_LENGTH = 4096
# Logits = final hidden state (RMS 1 after the norm) . embedding row: an embedding of this RMS times sqrt(hidden)
# gives logits of RMS ~3, neither flat nor one-hot.
LOGIT_RMS = 3.0


@dataclass(frozen=True)
class Shape:
    name: str  # the real model whose dimensions these are
    hidden: int
    ffn: int
    layers: int
    heads: int
    kv_heads: int
    vocab: int
    rope_theta: float
    rms_norm_eps: float

    @property
    def head_dim(self) -> int:
        return self.hidden // self.heads

    def tensors(self) -> dict[str, tuple[int, int] | tuple[int]]:
        """GGUF tensor name -> numpy shape ((out, in) for matrices); tied embeddings: no output.weight."""
        kv = self.kv_heads * self.head_dim
        shapes = {"token_embd.weight": (self.vocab, self.hidden), "output_norm.weight": (self.hidden,)}
        for i in range(self.layers):
            shapes |= {f"blk.{i}.{name}": shape for name, shape in {
                "attn_norm.weight": (self.hidden,), "ffn_norm.weight": (self.hidden,),
                "attn_q.weight": (self.hidden, self.hidden), "attn_k.weight": (kv, self.hidden),
                "attn_v.weight": (kv, self.hidden), "attn_output.weight": (self.hidden, self.hidden),
                "ffn_gate.weight": (self.ffn, self.hidden), "ffn_up.weight": (self.ffn, self.hidden),
                "ffn_down.weight": (self.hidden, self.ffn)}.items()}
        return shapes

    def config(self) -> LlamaConfig:
        return LlamaConfig(hidden_size=self.hidden, intermediate_size=self.ffn, num_hidden_layers=self.layers,
                           num_attention_heads=self.heads, num_key_value_heads=self.kv_heads, head_dim=self.head_dim,
                           rope_theta=self.rope_theta, rms_norm_eps=self.rms_norm_eps, vocab_size=self.vocab,
                           tie_word_embeddings=True, context_length=CONTEXT_LENGTH)

    @property
    def parameters(self) -> int:
        return sum(int(np.prod(shape)) for shape in self.tensors().values())


SIZES = {
    "0.5b": Shape("Qwen2.5-0.5B", 896, 4864, 24, 14, 2, 151936, 1e6, 1e-6),
    "1b": Shape("Llama-3.2-1B", 2048, 8192, 16, 32, 8, 128256, 5e5, 1e-5),
    "1.5b": Shape("Qwen2.5-1.5B", 1536, 8960, 28, 12, 2, 151936, 1e6, 1e-6),
    "3b": Shape("Llama-3.2-3B", 3072, 8192, 28, 24, 8, 128256, 5e5, 1e-5),
}


def _f16_bytes(values: np.ndarray) -> np.ndarray:
    return values.astype(np.float16).view(np.uint8).reshape(-1, 2)


def random_blocks(rng: np.random.Generator, ggml_type: GGMLQuantizationType, shape: tuple[int, int],
                  rms: float) -> np.ndarray:
    """Uniform random codes with a per-block scale (jittered by +-25%) such that the weights have about `rms`,
    as the block bytes [out, in / 32 * block bytes] of a Q4_1 (centred: min = -7.5 scale) or Q8_0 tensor."""
    block_bytes, block_weights, _, _ = BLOCK_TYPES[ggml_type]
    blocks = shape[0] * shape[1] // block_weights
    jitter = rng.uniform(0.75, 1.25, blocks)
    out = np.empty((blocks, block_bytes), np.uint8)
    if ggml_type == GGMLQuantizationType.Q4_1:  # codes 0..15: RMS about the mean sqrt(255 / 12)
        scale = _f16_bytes(rms / np.sqrt(255 / 12) * jitter)
        out[:, 0:2], out[:, 2:4] = scale, _f16_bytes(-7.5 * scale.view(np.float16).astype(np.float32).ravel())
        out[:, 4:] = rng.integers(0, 256, (blocks, block_bytes - 4), np.uint8)
    elif ggml_type == GGMLQuantizationType.Q8_0:  # codes -127..127: RMS sqrt(127 * 128 / 3)
        out[:, 0:2] = _f16_bytes(rms / np.sqrt(127 * 128 / 3) * jitter)
        out[:, 2:] = rng.integers(-127, 128, (blocks, block_bytes - 2), np.int8).view(np.uint8)
    else:
        raise ValueError(f"no random blocks for {ggml_type.name}")
    return out.reshape(shape[0], -1)


def block_type(name: str) -> GGMLQuantizationType:
    return EMBEDDING_TYPE if name == "token_embd.weight" else MATRIX_TYPE


def tensor_data(name: str, shape: tuple, hidden: int, seed: int) -> np.ndarray:
    """One tensor's bytes from its own generator (seed, name): the same whichever tensors come before it.
    Matrices have weights of RMS 1/sqrt(in), so a projection keeps its input's scale; norms are ones."""
    if len(shape) == 1:
        return np.ones(shape, np.float32)
    rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
    rms = LOGIT_RMS / np.sqrt(hidden) if name == "token_embd.weight" else 1 / np.sqrt(shape[1])
    return random_blocks(rng, block_type(name), shape, rms)


def write_tokenizer(writer: GGUFWriter, tokenizer_gguf: Path, vocab: int) -> None:
    reader = open_gguf(tokenizer_gguf)
    value = lambda key: gguf_value(reader, f"tokenizer.{key}")
    tokens, types = value("ggml.tokens"), value("ggml.token_type")
    if len(tokens) > vocab:
        raise ValueError(f"the tokenizer has {len(tokens)} tokens, more than the vocabulary of {vocab}")
    padding = [f"<|placeholder_{i}|>" for i in range(len(tokens), vocab)]
    writer.add_tokenizer_model(value("ggml.model"))
    writer.add_tokenizer_pre(value("ggml.pre"))
    writer.add_token_list(tokens + padding)
    writer.add_token_types(types + [NORMAL_TOKEN] * len(padding))
    writer.add_token_merges(value("ggml.merges"))
    writer.add_bos_token_id(value("ggml.bos_token_id"))
    writer.add_eos_token_id(value("ggml.eos_token_id"))
    writer.add_unk_token_id(value("ggml.unknown_token_id"))
    writer.add_pad_token_id(value("ggml.padding_token_id"))
    writer.add_add_bos_token(value("ggml.add_bos_token"))
    writer.add_add_space_prefix(value("ggml.add_space_prefix"))
    writer.add_chat_template(value("chat_template"))


def add_decoder_metadata(writer: GGUFWriter, config: LlamaConfig) -> None:
    """The <arch>.* keys llama.cpp writes for every Llama-style decoder."""
    writer.add_context_length(config.context_length)
    writer.add_embedding_length(config.hidden_size)
    writer.add_feed_forward_length(config.intermediate_size)
    writer.add_block_count(config.num_hidden_layers)
    writer.add_head_count(config.num_attention_heads)
    writer.add_head_count_kv(config.num_key_value_heads)
    writer.add_rope_freq_base(config.rope_theta)
    writer.add_layer_norm_rms_eps(config.rms_norm_eps)


def write_synthetic_gguf(size: str, path: Path, seed: int = 0, tokenizer_gguf: Path | None = None) -> Path:
    """SIZES[size] with random weights as a GGUF at `path`, streamed tensor by tensor (written to a temporary
    name, then renamed: a killed run leaves no half file under `path`)."""
    shape = SIZES[size]
    tensors = shape.tensors()
    partial = path.with_suffix(".partial")
    writer = GGUFWriter(partial, "llama")
    writer.add_name(f"synthetic {shape.name} (random weights, seed {seed})")
    add_decoder_metadata(writer, shape.config())
    writer.add_rope_dimension_count(shape.head_dim)
    writer.add_vocab_size(shape.vocab)
    writer.add_file_type(3)  # MOSTLY_Q4_1, as SmolLM2's
    write_tokenizer(writer, tokenizer_gguf or fetch_gguf(get_model(TOKENIZER_MODEL)), shape.vocab)
    for name, tensor_shape in tensors.items():  # the sizes first (the header), then each tensor's bytes
        if len(tensor_shape) == 1:
            writer.add_tensor_info(name, tensor_shape, np.dtype(np.float32), 4 * tensor_shape[0])
        else:
            ggml_type = block_type(name)
            block_bytes, block_weights, _, _ = BLOCK_TYPES[ggml_type]
            row_bytes = tensor_shape[1] // block_weights * block_bytes
            writer.add_tensor_info(name, (tensor_shape[0], row_bytes), np.dtype(np.uint8),
                                   tensor_shape[0] * row_bytes, ggml_type)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    for name, tensor_shape in tensors.items():
        writer.write_tensor_data(tensor_data(name, tensor_shape, shape.hidden, seed))
    writer.close()
    partial.rename(path)
    return path


def synthetic_gguf(size: str, directory: Path, seed: int = 0) -> Path:
    """directory/synthetic-SIZE.gguf, written when missing."""
    path = directory / f"synthetic-{size}.gguf"
    if not path.is_file():
        directory.mkdir(parents=True, exist_ok=True)
        write_synthetic_gguf(size, path, seed)
    return path


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m models.synthetic", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("sizes", help=f"comma-separated, of {', '.join(SIZES)}")
    parser.add_argument("--out", type=Path, default=Path("synthetic"), help="directory (default %(default)s)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    sizes = args.sizes.split(",")
    for size in sizes:  # all checked before any is written
        if size not in SIZES:
            parser.error(f"unknown size {size!r} (known: {', '.join(SIZES)})")
    args.out.mkdir(parents=True, exist_ok=True)
    for size in sizes:
        path = write_synthetic_gguf(size, args.out / f"synthetic-{size}.gguf", args.seed)
        print(f"{path}: {SIZES[size].name} shape, {SIZES[size].parameters / 1e9:.2f}B parameters, "
              f"{path.stat().st_size / 1e6:.0f} MB")


if __name__ == "__main__":
    main()
