"""The Llama family (SmolLM2, Llama 2/3, ...): nn.Module graph and weight-name mapping."""
from .model import CompileOptions, LlamaForCausalLM
from .weights import llama_params

__all__ = ["CompileOptions", "LlamaForCausalLM", "llama_params"]
