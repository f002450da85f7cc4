"""What the browser tests (e2e/) and the benchmarks (bench/) share: Debian's Chromium with WebGPU driven by
Playwright (harness.browser) and a real uvicorn server on a free port (harness.server). An installed package, so
that `python -m bench` runs from any directory."""
