// The llama.cpp baseline of `python -m bench` (bench/wllama.py drives these functions through Playwright):
// npm @wllama/wllama, llama.cpp compiled to WebAssembly, on the CPU of this tab.
import { Wllama } from "/wllama/index.js";

const WASM_PATHS = { default: "/wllama/wasm/wllama.wasm" };
let wllama = null;

/**
 * Loads the GGUF at `url` through wllama's own cache (OPFS): a download in a fresh profile, a cache read after.
 * `n_gpu_layers: 0` keeps every layer on the CPU (this Chromium's WebGPU is SwiftShader); one slot
 * (`n_parallel: 1`) of `contextTokens`. wllama takes its pthread path only when the page is cross-origin
 * isolated and `threads` > 1, so the threads it reports are returned for the caller to check.
 */
export async function load(url, threads, contextTokens) {
  const start = performance.now();
  wllama = new Wllama(WASM_PATHS, { suppressNativeLog: true });
  await wllama.loadModelFromUrl(url, { n_threads: threads, n_ctx: contextTokens, n_gpu_layers: 0, n_parallel: 1 });
  return {
    seconds: (performance.now() - start) / 1000,
    threads: wllama.getNumThreads(),
    crossOriginIsolated: globalThis.crossOriginIsolated,
  };
}

/**
 * Greedy completion of `prompt` (text: wllama 3 refuses token ids), exactly `maxTokens` tokens (`ignore_eos`
 * masks the end-of-generation tokens), on an empty KV cache (`cache_prompt: false`). llama-server's loop inside
 * wllama runs one step per poll, so each token arrives in its own chunk: times are taken as chunks arrive.
 * `n_probs: 1` makes every chunk carry its token ids (measured: no cost above run-to-run noise).
 */
export async function generate(prompt, maxTokens) {
  const ids = [], arrivals = [];
  let usage = null;
  const start = performance.now();
  await wllama.createCompletion({
    prompt, max_tokens: maxTokens, temperature: 0, ignore_eos: true, cache_prompt: false, n_probs: 1, stream: true,
    onData: (chunk) => {
      const tokens = chunk.choices[0]?.logprobs?.content ?? [];
      if (tokens.length > 0) arrivals.push(performance.now());
      ids.push(...tokens.map((token) => token.id));
      usage = chunk.usage ?? usage;
    },
  });
  return {
    ids,
    promptTokens: usage.prompt_tokens,
    cachedTokens: usage.prompt_tokens_details?.cached_tokens ?? 0,
    firstTokenS: (arrivals[0] - start) / 1000,
    lastTokenS: (arrivals[arrivals.length - 1] - start) / 1000,
  };
}
