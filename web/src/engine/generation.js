// One completion: prefill what the KV cache lacks, then sample and decode token by token until a stop token,
// a stop string, max_tokens, the end of the context window, or an abort. Independent of tvmjs: the model is
// anything with the LanguageModel shape below (the worker passes its WebGPU model).
import { planPrefill } from "./prefill.js";
import { adjustLogits, sampleToken } from "./sampler.js";
import { StreamingDetokenizer } from "./detokenizer.js";
import { StopStringFilter } from "./stop.js";

/**
 * @typedef {{
 *   tokens: number[],
 *   prefillChunkSize: number,
 *   truncate(length: number): void,
 *   prefill(ids: number[]): Promise<Float32Array>,
 *   decode(id: number): Promise<Float32Array>,
 * }} LanguageModel  a sequence in a KV cache: `tokens` is what it holds; prefill/decode append tokens and return
 *   the logits after the last one; truncate drops tokens from the end
 * @typedef {"stop" | "length" | "abort"} FinishReason
 * @typedef {{
 *   finishReason: FinishReason, promptTokens: number, cachedTokens: number, prefillTokens: number,
 *   completionTokens: number, timeToFirstTokenS: number, prefillS: number, decodeS: number, decodeSteps: number,
 * }} GenerationResult
 */

/**
 * @param {{
 *   model: LanguageModel,
 *   promptIds: number[],
 *   maxTokens: number,
 *   sampling: import("./sampler.js").SamplingParams,
 *   random: () => number,
 *   stopTokenIds: Set<number>,
 *   stopStrings: string[],
 *   decodeText: (ids: number[]) => string,
 *   isAborted: () => boolean,
 *   onText: (text: string) => void,
 *   now?: () => number,
 * }} job
 * @returns {Promise<GenerationResult>}
 */
export async function generate(job) {
  const { model, promptIds, sampling, stopTokenIds, isAborted, onText } = job;
  const now = job.now ?? (() => performance.now());
  const start = now();
  const { keep, chunks } = planPrefill(model.tokens, promptIds, model.prefillChunkSize);
  model.truncate(keep);
  const result = {
    finishReason: /** @type {FinishReason} */ ("abort"), promptTokens: promptIds.length, cachedTokens: keep,
    prefillTokens: 0, completionTokens: 0, timeToFirstTokenS: 0, prefillS: 0, decodeS: 0, decodeSteps: 0,
  };

  let logits;
  for (const chunk of chunks) {
    if (isAborted()) return result;
    logits = await model.prefill(chunk);
    result.prefillTokens += chunk.length;
  }
  const prefilled = now();
  result.prefillS = (prefilled - start) / 1000;
  if (isAborted()) return result; // aborted while queued or during the last prefill chunk: no token at all

  const counts = new Map();
  const detokenizer = new StreamingDetokenizer(job.decodeText);
  const stops = new StopStringFilter(job.stopStrings);
  for (;;) {
    adjustLogits(logits, sampling, counts);
    const token = sampleToken(logits, sampling, job.random);
    result.completionTokens++;
    if (result.completionTokens === 1) result.timeToFirstTokenS = (now() - start) / 1000;
    if (stopTokenIds.has(token)) {
      result.finishReason = "stop";
      break;
    }
    counts.set(token, (counts.get(token) ?? 0) + 1);
    const text = stops.push(detokenizer.push(token));
    if (text) onText(text);
    if (stops.stopped) {
      result.finishReason = "stop";
      break;
    }
    if (result.completionTokens >= job.maxTokens) {
      result.finishReason = "length";
      break;
    }
    if (isAborted()) break;
    logits = await model.decode(token);
    result.decodeSteps++;
  }
  result.decodeS = (now() - prefilled) / 1000;
  if (!stops.stopped) {
    const released = stops.push(detokenizer.flush());
    if (stops.stopped) result.finishReason = "stop";
    const rest = stops.stopped ? released : released + stops.flush();
    if (rest) onText(rest);
  }
  return result;
}
