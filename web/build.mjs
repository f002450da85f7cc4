// Bundles the browser code into dist/ (served by static_server under /static/): the engine's main-thread
// API, its Web Worker, the CPU library's extra threads, the chat page and the Python page; model-library.js also on its own, for
// pages that drive a model library directly (the e2e runners). npm packages are bundled in; nothing is fetched at run time.
import { build } from "esbuild";

const entryPoints = {
  engine: "src/engine/index.js",
  worker: "src/engine/worker.js",
  "cpu-thread": "src/engine/cpu-thread.js",
  "model-library": "src/engine/model-library.js",
  chat: "src/page/chat.js",
  python: "src/page/python.js",
};

// tvmjs and web-xgrammar carry Node.js code paths (taken only when running under Node) that require
// these modules; in the browser they are never loaded, so they stay out of the bundle.
const nodeOnlyModules = ["fs", "path", "perf_hooks", "ws", "url", "module", "crypto"];

await build({
  entryPoints,
  outdir: "dist",
  bundle: true,
  format: "esm",
  target: "es2022",
  sourcemap: true,
  external: nodeOnlyModules,
  logLevel: "info",
});
