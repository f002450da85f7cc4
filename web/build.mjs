// Bundles the browser code into dist/ (served by static_server under /static/): the engine's main-thread
// API, its Web Worker, and the chat page. npm packages are bundled in; nothing is fetched at run time.
import { build } from "esbuild";

const entryPoints = {
  engine: "src/engine/index.js",
  worker: "src/engine/worker.js",
  chat: "src/page/chat.js",
};

// tvmjs and web-tokenizers carry Node.js code paths (taken only when running under Node) that require
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
