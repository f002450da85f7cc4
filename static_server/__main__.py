"""python -m static_server [--host 127.0.0.1] [--port 8000] [--bundles DIR] [--cors ORIGIN]"""
import argparse
import sys
from pathlib import Path

import uvicorn

from .app import DEFAULT_ASSETS_DIR, DEFAULT_BUNDLES_DIR, PAGE_ASSETS, create_app


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m static_server", description=__doc__)
    # 127.0.0.1, not 0.0.0.0: WebGPU exists only in secure contexts, which plain-HTTP localhost is.
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--bundles", type=Path, default=DEFAULT_BUNDLES_DIR, help="directory of bundles")
    parser.add_argument("--cors", metavar="ORIGIN", help="let this other origin (e.g. https://app.example) use the "
                        "bundles, as WebLLM on another site does; default: same origin only")
    args = parser.parse_args()
    missing = [name for name in PAGE_ASSETS if not (DEFAULT_ASSETS_DIR / name).is_file()]
    if missing:
        print(f"tabllm: warning: {', '.join(missing)} missing in {DEFAULT_ASSETS_DIR}; the chat page needs them: "
              "run `npm run build --prefix web`", file=sys.stderr, flush=True)
    print(f"tabllm: open http://{args.host}:{args.port}/  (bundles from {args.bundles.resolve()})", flush=True)
    uvicorn.run(create_app(args.bundles, cors_origin=args.cors), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
