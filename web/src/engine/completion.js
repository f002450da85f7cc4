// OpenAI ChatCompletion / ChatCompletionChunk objects. The worker produces chunks only (one way to generate);
// a non-streaming create() collects them into a ChatCompletion.

/** @typedef {{id: string, created: number, model: string}} CompletionMeta */

/** @param {string} model @returns {CompletionMeta} */
export function completionMeta(model) {
  return { id: `chatcmpl-${crypto.randomUUID()}`, created: Math.floor(Date.now() / 1000), model };
}

/**
 * @param {CompletionMeta} meta
 * @param {{role?: "assistant", content?: string}} delta
 * @param {import("./generation.js").FinishReason | null} finishReason
 */
export function contentChunk(meta, delta, finishReason = null) {
  return {
    ...meta, object: "chat.completion.chunk",
    choices: [{ index: 0, delta, logprobs: null, finish_reason: finishReason }],
  };
}

/** The last chunk of a stream with stream_options.include_usage: no choices, the usage. */
export function usageChunk(meta, usage) {
  return { ...meta, object: "chat.completion.chunk", choices: [], usage };
}

/** OpenAI usage, with the KV reuse (prompt_tokens_details.cached_tokens) and timings (extra, as WebLLM). */
export function usageOf(/** @type {import("./generation.js").GenerationResult} */ r) {
  const perSecond = (count, seconds) => (seconds > 0 ? count / seconds : 0);
  return {
    prompt_tokens: r.promptTokens,
    completion_tokens: r.completionTokens,
    total_tokens: r.promptTokens + r.completionTokens,
    prompt_tokens_details: { cached_tokens: r.cachedTokens },
    extra: {
      prefill_tokens: r.prefillTokens,
      time_to_first_token_s: r.timeToFirstTokenS,
      prefill_tokens_per_s: perSecond(r.prefillTokens, r.prefillS),
      decode_tokens_per_s: perSecond(r.decodeSteps, r.decodeS),
      e2e_latency_s: r.prefillS + r.decodeS,
    },
  };
}

/** A ChatCompletion from the chunks of one stream (which must include the usage chunk). */
export function collectCompletion(chunks) {
  const usage = chunks.find((c) => c.usage)?.usage;
  const content = chunks.map((c) => c.choices[0]?.delta.content ?? "").join("");
  const finishReason = chunks.find((c) => c.choices[0]?.finish_reason)?.choices[0].finish_reason ?? null;
  const { id, created, model } = chunks[0];
  return {
    id, object: "chat.completion", created, model,
    choices: [{ index: 0, message: { role: "assistant", content }, logprobs: null, finish_reason: finishReason }],
    usage,
  };
}
