"""python -m compile: a model -> a bundle of WebGPU/WASM model libraries, weight shards and metadata."""
