// OpenAI ChatCompletion / ChatCompletionChunk objects, and the legacy Completion ("text_completion") objects of
// completions.create(). The worker produces chunks only (one way to generate); a non-streaming create() collects
// them into a ChatCompletion or a Completion.

/** @typedef {{id: string, created: number, model: string}} CompletionMeta */

/** @param {string} model @param {"chatcmpl" | "cmpl"} [kind] chat or legacy completion @returns {CompletionMeta} */
export function completionMeta(model, kind = "chatcmpl") {
  return { id: `${kind}-${crypto.randomUUID()}`, created: Math.floor(Date.now() / 1000), model };
}

/**
 * A legacy completion's chunk: one choice's new text, or (with `finishReason`) its end.
 * @param {CompletionMeta} meta @param {number} index @param {string} text
 * @param {import("./generation.js").FinishReason | null} [finishReason]
 */
export function textChunk(meta, index, text, finishReason = null) {
  const choice = { index, text, logprobs: null, finish_reason: finishReason };
  return { ...meta, object: "text_completion", choices: [choice] };
}

/**
 * One choice's delta. `logprobs`: the tokens this delta's text came from (null when logprobs were not asked for).
 * @param {CompletionMeta} meta
 * @param {number} index the choice's index (0..n-1)
 * @param {{role?: "assistant", content?: string}} delta
 * @param {{finishReason?: import("./generation.js").FinishReason | null,
 *          logprobs?: import("./logprobs.js").TokenLogprob[] | null}} [fields]
 */
export function choiceChunk(meta, index, delta, { finishReason = null, logprobs = null } = {}) {
  return {
    ...meta, object: "chat.completion.chunk",
    choices: [{ index, delta, logprobs: logprobs && { content: logprobs, refusal: null }, finish_reason: finishReason }],
  };
}

/**
 * The chunks that end a choice whose output may hold a tool call: its text not sent yet (before the call), then
 * each call as OpenAI streams one (a chunk with its id, type and name, then its arguments), then the
 * finish: "tool_calls" when the output ended with a call. `logprobs` (of the tokens not sent yet) go with the first.
 * @param {CompletionMeta} meta @param {number} index
 * @param {{content: string, calls: Array<{name: string, arguments: string}>}} output
 * @param {import("./logprobs.js").TokenLogprob[] | null} logprobs
 * @param {import("./generation.js").FinishReason} finishReason
 */
export function toolCallChunks(meta, index, { content, calls }, logprobs, finishReason) {
  const deltas = [];
  if (content || (!calls.length && logprobs?.length)) deltas.push({ content });
  calls.forEach((call, k) => {
    const id = `call_${crypto.randomUUID().replaceAll("-", "").slice(0, 24)}`;
    deltas.push({ tool_calls: [{ index: k, id, type: "function", function: { name: call.name, arguments: "" } }] });
    deltas.push({ tool_calls: [{ index: k, function: { arguments: call.arguments } }] });
  });
  return [
    ...deltas.map((delta, k) => choiceChunk(meta, index, delta, { logprobs: k === 0 ? logprobs : null })),
    choiceChunk(meta, index, {}, { finishReason: calls.length && finishReason === "stop" ? "tool_calls" : finishReason }),
  ];
}

/** The last chunk of a stream with stream_options.include_usage: no choices, the usage. */
export function usageChunk(meta, usage, object = "chat.completion.chunk") {
  return { ...meta, object, choices: [], usage };
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

/** A ChatCompletion from the chunks of one stream (which must include the usage chunk): each choice's content
 * and logprobs joined, in index order. */
export function collectCompletion(chunks) {
  const choices = [];
  for (const chunk of chunks) {
    for (const { index, delta, logprobs, finish_reason: finishReason } of chunk.choices) {
      const choice = choices[index] ??= {
        index, message: { role: "assistant", content: "" }, logprobs: null, finish_reason: null,
      };
      choice.message.content += delta.content ?? "";
      for (const call of delta.tool_calls ?? []) {
        const calls = choice.message.tool_calls ??= [];
        calls[call.index] ??= { id: call.id, type: call.type, function: { name: call.function.name, arguments: "" } };
        calls[call.index].function.arguments += call.function.arguments;
      }
      if (logprobs) (choice.logprobs ??= { content: [], refusal: null }).content.push(...logprobs.content);
      choice.finish_reason = finishReason ?? choice.finish_reason;
    }
  }
  for (const choice of choices) if (choice.message.tool_calls && !choice.message.content) choice.message.content = null;
  const { id, created, model } = chunks[0];
  return { id, object: "chat.completion", created, model, choices, usage: chunks.find((c) => c.usage)?.usage };
}

/** A legacy Completion from the chunks of one stream (with the usage chunk): each choice's text joined. */
export function collectTextCompletion(chunks) {
  const choices = [];
  for (const chunk of chunks) {
    for (const { index, text, finish_reason: finishReason } of chunk.choices) {
      const choice = choices[index] ??= { index, text: "", logprobs: null, finish_reason: null };
      choice.text += text;
      choice.finish_reason = finishReason ?? choice.finish_reason;
    }
  }
  const { id, created, model } = chunks[0];
  return { id, object: "text_completion", created, model, choices, usage: chunks.find((c) => c.usage)?.usage };
}
