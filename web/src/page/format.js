// Numbers as the page shows them.

export function formatMegabytes(bytes) {
  return `${(bytes / 1e6).toFixed(1)} MB`;
}

// "12.3 MB of 92.9 MB (13%)"; floor, so 100% means done.
export function formatProgress(loadedBytes, totalBytes, fraction) {
  const percent = Math.floor(Math.min(Math.max(fraction, 0), 1) * 100);
  if (!totalBytes) return `${percent}%`;
  return `${formatMegabytes(loadedBytes)} of ${formatMegabytes(totalBytes)} (${percent}%)`;
}

function formatRate(tokensPerSecond) {
  return tokensPerSecond >= 10 ? tokensPerSecond.toFixed(0) : tokensPerSecond.toFixed(2);
}

// The stats line under an answer, from the usage of the stream's last chunk (timings in `usage.extra`,
// as WebLLM reports them).
export function formatStats(usage, finishReason) {
  const timings = usage.extra;
  const parts = [
    `first token ${timings.time_to_first_token_s.toFixed(2)} s`,
    `prefill ${formatRate(timings.prefill_tokens_per_s)} tok/s`,
    `decode ${formatRate(timings.decode_tokens_per_s)} tok/s`,
    `${usage.prompt_tokens} prompt + ${usage.completion_tokens} answer tokens`,
  ];
  if (finishReason === "length") parts.push("stopped at max tokens");
  return parts.join(" · ");
}

// Where the model runs, for the status line: the WebGPU adapter, or the CPU through WebAssembly.
export function formatDevice(info) {
  if (info.device === "wasm") {
    const threads = `${info.threads} thread${info.threads === 1 ? "" : "s"}`;
    const simd = info.library === "wasm32-relaxed" ? "relaxed SIMD" : "SIMD";
    const limited = info.threadsLimitedBy ? `: ${info.threadsLimitedBy}` : "";
    const because = info.cpuBecause ? `; ${info.cpuBecause} for this model` : "";
    return `the CPU (WebAssembly ${simd}, ${threads}${limited}${because})`;
  }
  const adapter = [info.adapter?.vendor, info.adapter?.architecture].filter(Boolean).join(" ");
  return adapter ? `WebGPU (${adapter})` : "WebGPU";
}
