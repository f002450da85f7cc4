#!/usr/bin/env bash
# Installs the Debian packages tabllm needs, only those missing:
#   emscripten  - links the wasm model libraries (emcc 3.1.6 with clang/lld 14)
#   chromium    - the browser the tests drive (Playwright uses it; it downloads no browser of its own)
#   python3-venv, npm - for the virtualenv and the JavaScript packages
set -euo pipefail

missing=()
command -v emcc >/dev/null || missing+=(emscripten)
command -v chromium >/dev/null || missing+=(chromium)
python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
command -v npm >/dev/null || missing+=(npm)
[ ${#missing[@]} -eq 0 ] && exit 0

echo "installing Debian packages: ${missing[*]}"
if [ "$(id -u)" -eq 0 ]; then
  as_root=()
elif command -v sudo >/dev/null; then
  as_root=(sudo)
else
  echo "error: tabllm needs the Debian packages ${missing[*]}, and installing them needs root." >&2
  echo "       Run as root, or install sudo, or run: apt-get install ${missing[*]}" >&2
  exit 1
fi
if ! { "${as_root[@]}" apt-get update -qq &&
       DEBIAN_FRONTEND=noninteractive "${as_root[@]}" apt-get install -y -qq "${missing[@]}"; }; then
  echo "error: could not install ${missing[*]} with apt-get; install them by hand and run again" >&2
  exit 1
fi
