"""Tiny Hugging Face checkpoints of each architecture, written the same way every time from a seed: config.json (the
architecture's real keys, small sizes), seeded random weights as safetensors, a byte-level BPE tokenizer.json and a
ChatML chat template. tests/ compile them; tests/fixtures/record_transformers.py feeds the very same directories to
transformers and records its greedy ids and logits (tests/fixtures/<name>_transformers.json), so the tests need no
torch.
"""
import json
from pathlib import Path

import numpy as np
from tokenizers import Tokenizer, decoders, models, pre_tokenizers

FIXTURES = Path(__file__).parent / "fixtures"
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and message['role'] != 'system' %}<|im_start|>system\nYou are a tiny test model.<|im_end|>\n"
    "{% endif %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
VOCAB_SIZE = 256 + len(SPECIAL_TOKENS)

_COMMON = {
    "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
    "num_key_value_heads": 2, "max_position_embeddings": 256, "vocab_size": VOCAB_SIZE, "hidden_act": "silu",
    "initializer_range": 0.02, "torch_dtype": "float32",
    "eos_token_id": 258, "pad_token_id": 256,
}
# name -> (config.json, weight dtype in the files, shards, chat template in chat_template.jinja rather than in
# tokenizer_config.json)
CHECKPOINTS = {
    "llama3": ({**_COMMON, "model_type": "llama", "architectures": ["LlamaForCausalLM"], "rms_norm_eps": 1e-5,
                "rope_theta": 500000.0, "tie_word_embeddings": False, "attention_bias": False, "mlp_bias": False,
                "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                 "high_freq_factor": 4.0, "original_max_position_embeddings": 64}},
               "F32", 1, False),
    # Mistral v0.1's window over every layer, shorter (32) than the 89-token prompt
    "mistral": ({**_COMMON, "model_type": "mistral", "architectures": ["MistralForCausalLM"], "rms_norm_eps": 1e-5,
                 "rope_theta": 1000000.0, "tie_word_embeddings": False, "sliding_window": 32},
                "BF16", 1, False),
    "qwen2": ({**_COMMON, "model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"], "rms_norm_eps": 1e-6,
               "rope_theta": 1000000.0, "tie_word_embeddings": True, "use_sliding_window": False,
               "sliding_window": None, "max_window_layers": 2},
              "BF16", 1, False),
    "qwen3": ({**_COMMON, "model_type": "qwen3", "architectures": ["Qwen3ForCausalLM"], "rms_norm_eps": 1e-6,
               "rope_theta": 1000000.0, "tie_word_embeddings": True, "head_dim": 32, "attention_bias": False,
               "use_sliding_window": False, "sliding_window": None, "max_window_layers": 2},
              "F16", 2, True),
    # Sliding layers around a global one; the window (32) is shorter than the 89-token prompt, so the sliding
    # layers attend to fewer keys than the global one. head_dim and query_pre_attn_scalar differ from
    # hidden_size / heads and head_dim, so each is read from its own key.
    "gemma3": ({**{k: v for k, v in _COMMON.items() if k != "hidden_act"}, "model_type": "gemma3_text",
                "architectures": ["Gemma3ForCausalLM"], "hidden_activation": "gelu_pytorch_tanh", "rms_norm_eps": 1e-6,
                "head_dim": 32,
                "query_pre_attn_scalar": 24, "sliding_window": 32, "tie_word_embeddings": True,
                "layer_types": ["sliding_attention", "sliding_attention", "full_attention", "sliding_attention"],
                "num_hidden_layers": 4,
                "rope_parameters": {"sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
                                    "full_attention": {"rope_type": "default", "rope_theta": 1000000.0}},
                "final_logit_softcapping": None, "attn_logit_softcapping": None, "attention_bias": False},
               "BF16", 1, False),
    # gemma-2-2b-it's config.json keys (transformers 4's: rope_theta, no layer_types, so sliding and global layers
    # alternate by parity), with soft caps small enough that they change this model's scores and logits
    # (tests/test_architectures.py), and the query scalar that llama.cpp assumes (head_dim: tests/test_gemma2_gguf.py).
    "gemma2": ({**{k: v for k, v in _COMMON.items() if k != "hidden_act"}, "model_type": "gemma2",
                "architectures": ["Gemma2ForCausalLM"], "hidden_act": "gelu_pytorch_tanh",
                "hidden_activation": "gelu_pytorch_tanh", "rms_norm_eps": 1e-6, "head_dim": 32, "num_hidden_layers": 4,
                "query_pre_attn_scalar": 32, "sliding_window": 32, "rope_theta": 10000.0, "tie_word_embeddings": True,
                "attn_logit_softcapping": 5.0, "final_logit_softcapping": 5.0, "attention_bias": False,
                "cache_implementation": "hybrid"},
               "F32", 1, False),
    # Phi-3.5-mini's keys (q/k/v and gate/up fused, LongRoPE) at tiny sizes: the RoPE was "trained" on 64 positions,
    # so the tests' context of 256 tokens rotates by the long factors, scaled by sqrt(1 + ln 4 / ln 64); with
    # Phi-3-mini-4k's sliding window (there 2,047 tokens; here 48, shorter than the prompt)
    "phi3": ({**_COMMON, "model_type": "phi3", "architectures": ["Phi3ForCausalLM"], "rms_norm_eps": 1e-5,
              "rope_theta": 10000.0, "tie_word_embeddings": False, "sliding_window": 48,
              "original_max_position_embeddings": 64, "attention_bias": False, "attention_dropout": 0.0,
              "embd_pdrop": 0.0, "resid_pdrop": 0.0,
              "rope_scaling": {"type": "longrope",
                               "short_factor": [1.0, 1.01, 1.03, 1.08, 1.12, 1.2, 1.35, 1.5],
                               "long_factor": [1.05, 1.3, 1.9, 3.4, 6.0, 11.0, 22.0, 44.0]}},
             "BF16", 1, False),
}
GEMMA = ("gemma2", "gemma3_text")  # model_types with Gemma's (1 + w) norms and feed-forward norms


def recorded(name: str) -> dict:
    """What transformers gave on the checkpoint `name` (tests/fixtures/record_transformers.py wrote it)."""
    return json.loads((FIXTURES / f"{name}_transformers.json").read_text(encoding="utf-8"))


def weight_shapes(hf: dict) -> dict[str, tuple[int, ...]]:
    """Every weight of the architecture, by its Hugging Face name (what transformers' state_dict holds)."""
    h, inter = hf["hidden_size"], hf["intermediate_size"]
    heads, kv = hf["num_attention_heads"], hf["num_key_value_heads"]
    hd = hf.get("head_dim") or h // heads
    bias = hf["model_type"] == "qwen2" or hf.get("attention_bias", False)
    shapes = {"model.embed_tokens.weight": (hf["vocab_size"], h)}
    for i in range(hf["num_hidden_layers"]):
        p = f"model.layers.{i}."
        shapes |= {p + "input_layernorm.weight": (h,), p + "post_attention_layernorm.weight": (h,),
                   p + "self_attn.q_proj.weight": (heads * hd, h), p + "self_attn.k_proj.weight": (kv * hd, h),
                   p + "self_attn.v_proj.weight": (kv * hd, h), p + "self_attn.o_proj.weight": (h, heads * hd),
                   p + "mlp.gate_proj.weight": (inter, h), p + "mlp.up_proj.weight": (inter, h),
                   p + "mlp.down_proj.weight": (h, inter)}
        if bias:
            shapes |= {p + "self_attn.q_proj.bias": (heads * hd,), p + "self_attn.k_proj.bias": (kv * hd,),
                       p + "self_attn.v_proj.bias": (kv * hd,)}
        if hf["model_type"] in ("qwen3", "gemma3_text"):
            shapes |= {p + "self_attn.q_norm.weight": (hd,), p + "self_attn.k_norm.weight": (hd,)}
        if hf["model_type"] in GEMMA:
            shapes |= {p + "pre_feedforward_layernorm.weight": (h,), p + "post_feedforward_layernorm.weight": (h,)}
        if hf["model_type"] == "phi3":  # one matrix each for q/k/v and gate/up, their rows in that order
            for part in ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "mlp.gate_proj", "mlp.up_proj"):
                del shapes[p + part + ".weight"]
            shapes |= {p + "self_attn.qkv_proj.weight": ((heads + 2 * kv) * hd, h),
                       p + "mlp.gate_up_proj.weight": (2 * inter, h)}
    shapes["model.norm.weight"] = (h,)
    if not hf["tie_word_embeddings"]:
        shapes["lm_head.weight"] = (hf["vocab_size"], h)
    return shapes


def random_weights(hf: dict, seed: int) -> dict[str, np.ndarray]:
    """Weights large enough that the logits spread over several units (clear greedy choices) and no more (float32
    rounding grows with them): matrices with unit gain, norms around 1, biases around 0."""
    rng = np.random.default_rng(seed)
    norm_offset = 0 if hf["model_type"] in GEMMA else 1  # Gemma's norms scale by 1 + weight
    weights = {}
    for name, shape in weight_shapes(hf).items():
        if name.endswith("norm.weight"):
            w = norm_offset + 0.2 * rng.standard_normal(shape)
        elif name.endswith(".bias"):
            w = 0.5 * rng.standard_normal(shape)
        elif name == "model.embed_tokens.weight":
            w = 0.1 * rng.standard_normal(shape)
        elif name == "lm_head.weight":
            w = 2 * rng.standard_normal(shape) / np.sqrt(shape[1])
        else:
            w = rng.standard_normal(shape) / np.sqrt(shape[1])
        weights[name] = w.astype(np.float32)
    return weights


def to_dtype(w: np.ndarray, dtype: str) -> np.ndarray:
    """float32 -> the stored dtype's bits (bfloat16: rounded to nearest even, kept as uint16)."""
    if dtype == "F32":
        return w.astype("<f4")
    if dtype == "F16":
        return w.astype("<f2")
    bits = w.astype("<f4").view(np.uint32)
    return ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype("<u2")


def write_safetensors(path: Path, tensors: dict[str, np.ndarray], dtype: str) -> None:
    header, offset, blobs = {}, 0, []
    for name, w in tensors.items():
        blob = to_dtype(w, dtype).tobytes()
        header[name] = {"dtype": dtype, "shape": list(w.shape), "data_offsets": [offset, offset + len(blob)]}
        offset += len(blob)
        blobs.append(blob)
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)  # the data starts 8-byte aligned
    path.write_bytes(len(text).to_bytes(8, "little") + text + b"".join(blobs))


def byte_level_tokenizer() -> Tokenizer:
    """Byte-level BPE with one token per byte (no merges) and the ChatML special tokens after them."""
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    tokenizer = Tokenizer(models.BPE(vocab={c: i for i, c in enumerate(sorted(alphabet))}, merges=[]))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens(SPECIAL_TOKENS)
    return tokenizer


def write_checkpoint(name: str, directory: Path, seed: int = 0, changes: dict | None = None) -> Path:
    """The checkpoint `name` of CHECKPOINTS in `directory` (created), its config.json keys updated by `changes`;
    returns it."""
    hf, dtype, shards, template_file = CHECKPOINTS[name]
    hf = {**hf, **(changes or {})}
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "config.json").write_text(json.dumps(hf, indent=1))
    weights = random_weights(hf, seed)
    names = list(weights)
    if shards == 1:
        write_safetensors(directory / "model.safetensors", weights, dtype)
    else:
        weight_map = {}
        for k in range(shards):
            file = f"model-{k + 1:05d}-of-{shards:05d}.safetensors"
            part = names[k * len(names) // shards:(k + 1) * len(names) // shards]
            write_safetensors(directory / file, {n: weights[n] for n in part}, dtype)
            weight_map |= {n: file for n in part}
        (directory / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    byte_level_tokenizer().save(str(directory / "tokenizer.json"))
    tokenizer_config = {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": None, "eos_token": "<|im_end|>",
                        "pad_token": "<|endoftext|>", "model_max_length": hf["max_position_embeddings"]}
    if template_file:
        (directory / "chat_template.jinja").write_text(CHAT_TEMPLATE)
    else:
        tokenizer_config["chat_template"] = CHAT_TEMPLATE
    (directory / "tokenizer_config.json").write_text(json.dumps(tokenizer_config, indent=1))
    # Qwen2.5's way: generation also ends at <|endoftext|>
    (directory / "generation_config.json").write_text(json.dumps({"eos_token_id": [258, 256]}))
    return directory
