"""python -m serve [--bundles DIR] [--model ID] [--host 127.0.0.1] [--port 8080] [--workers N] [--queue N]
[--api-key KEY] [--memory-limit-mib N] [--max-body-bytes N]

OpenAI's HTTP API (POST /v1/chat/completions, POST /v1/completions, GET /v1/models) over a bundle's CPU library,
run in wasmtime sandboxes: one per worker."""
import argparse
import logging
import os
import sys
from pathlib import Path

import uvicorn

from static_server.bundles import BundleDirectory
from .app import DEFAULT_MAX_BODY_BYTES, create_app
from .sandbox import DEFAULT_MEMORY_LIMIT
from .workers import SandboxSettings, ServedModel


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m serve", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundles", type=Path, default=Path("bundles"), help="directory of bundles (default: bundles)")
    parser.add_argument("--model", help="the bundle to serve: its id, directory name or model name (default: the first)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--workers", type=int, default=1, help="sandboxes, each generating one request at a time")
    parser.add_argument("--queue", type=int, default=8, help="requests that may wait for a worker; more get 429")
    parser.add_argument("--api-key", default=os.environ.get("TABLLM_API_KEY") or None,
                        help="require 'Authorization: Bearer KEY' (default: $TABLLM_API_KEY, else none)")
    parser.add_argument("--memory-limit-mib", type=int, default=DEFAULT_MEMORY_LIMIT >> 20,
                        help="the most memory one sandbox may use")
    parser.add_argument("--max-body-bytes", type=int, default=DEFAULT_MAX_BODY_BYTES)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="tabllm serve: %(message)s")

    offered = BundleDirectory(args.bundles).offered()
    chosen = [o for o in offered if args.model in (None, o.bundle_id, o.bundle.path.name, o.bundle.manifest.get("model"))]
    if not chosen:
        names = ", ".join(o.bundle.path.name for o in offered) or "none"
        sys.exit(f"tabllm serve: no bundle {args.model or ''} in {args.bundles.resolve()} (bundles there: {names}); "
                 "build one with `make model` and `python -m compile`")
    if args.host not in ("127.0.0.1", "localhost", "::1") and not args.api_key:
        print(f"tabllm serve: warning: {args.host} is reachable from other machines and no --api-key is set",
              file=sys.stderr)
    model = ServedModel(chosen[0].bundle, workers=args.workers, max_queue=args.queue,
                        settings=SandboxSettings(memory_limit=args.memory_limit_mib << 20))
    print(f"tabllm serve: {model.id} ({args.workers} sandbox{'es' if args.workers > 1 else ''}, loaded in "
          f"{model.load_s:.1f} s) at http://{args.host}:{args.port}/v1", flush=True)
    uvicorn.run(create_app(model, api_key=args.api_key, max_body_bytes=args.max_body_bytes), host=args.host,
                port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
