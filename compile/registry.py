"""The architectures, picked by the model_type of a Hugging Face config.json or the general.architecture of a GGUF.
Adding one: a folder compile/<arch>/ whose ARCHITECTURE is listed here, and its fidelity fixture
(tests/fixtures/record_transformers.py)."""

from compile import gemma2, gemma3, llama, mistral, phi3, qwen2, qwen3
from compile.architecture import Architecture
from models.errors import UnsupportedModelError

ARCHITECTURES: dict[str, Architecture] = {
    arch.name: arch for arch in (llama.ARCHITECTURE, mistral.ARCHITECTURE, qwen2.ARCHITECTURE, qwen3.ARCHITECTURE,
                                 gemma2.ARCHITECTURE, gemma3.ARCHITECTURE, phi3.ARCHITECTURE)
}


def get_architecture(name: str) -> Architecture:
    """By `Architecture.name`, which a config carries as its model_type."""
    return ARCHITECTURES[name]


def architecture_for_hf(model_type: str) -> Architecture:
    for arch in ARCHITECTURES.values():
        if model_type in arch.hf_model_types:
            return arch
    supported = sorted(t for arch in ARCHITECTURES.values() for t in arch.hf_model_types)
    raise UnsupportedModelError(f"model_type {model_type!r} is not supported (supported: {', '.join(supported)})")


def architecture_for_gguf(general_architecture: str) -> Architecture:
    for arch in ARCHITECTURES.values():
        if arch.gguf_architecture == general_architecture:
            return arch
    supported = sorted(arch.gguf_architecture for arch in ARCHITECTURES.values() if arch.gguf_architecture)
    raise UnsupportedModelError(f"GGUF architecture {general_architecture!r} is not supported "
                                f"(supported: {', '.join(supported)})")
