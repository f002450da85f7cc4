// Bundles the browser code into dist/ (served by static_server under /static/): the engine's main-thread
// API, its Web Worker, and the chat page. npm packages are bundled in; nothing is fetched at run time.
import { build } from "esbuild";

const entryPoints = {
  engine: "src/engine/index.js",
  worker: "src/engine/worker.js",
  chat: "src/page/chat.js",
};

await build({
  entryPoints,
  outdir: "dist",
  bundle: true,
  format: "esm",
  target: "es2022",
  sourcemap: true,
  logLevel: "info",
});
