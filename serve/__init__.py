"""python -m serve: OpenAI's HTTP API over bundles' CPU libraries in wasmtime sandboxes (see serve/app.py)."""
