// One completion request: prefill what the KV cache lacks, once, then for each of the n choices sample and
// decode token by token until a stop token, a stop string, max_tokens, the end of the context window, or an
// abort. Every choice after the first starts from the prompt again: the cache drops the previous choice's tokens
// (popn) and sampling starts from the prompt's saved logits, so the prompt is prefilled once. Independent of
// tvmjs: the model is anything with the LanguageModel shape below (the worker passes its TVM model).
import { planPrefill } from "./prefill.js";
import { adjustLogits, sampleToken } from "./sampler.js";
import { tokenLogprobs } from "./logprobs.js";
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
 * @typedef {{
 *   reset(): void,
 *   processLogits(logits: Float32Array): Promise<void>,
 *   acceptToken(token: number): void,
 * }} LogitsProcessor  runs in the decode loop before the sampler (as WebLLM's LogitProcessor): processLogits may
 *   change the logits in place (a grammar's bitmask sets the tokens it forbids to -Infinity); acceptToken is
 *   told each token sampled; reset starts a new choice
 * @typedef {"stop" | "length" | "abort"} FinishReason
 * @typedef {import("./logprobs.js").TokenLogprob} TokenLogprob
 * @typedef {{
 *   promptTokens: number, cachedTokens: number, prefillTokens: number, completionTokens: number,
 *   timeToFirstTokenS: number, prefillS: number, decodeS: number, decodeSteps: number,
 *   finishReasons: FinishReason[],
 * }} GenerationResult  completionTokens and decodeSteps count all choices; finishReasons has one per choice
 *   ("abort" for a choice an abort kept from starting)
 */

/**
 * @param {{
 *   model: LanguageModel,
 *   promptIds: number[],
 *   n?: number,
 *   maxTokens: number,
 *   sampling: import("./sampler.js").SamplingParams,
 *   random: () => number,
 *   stopTokenIds: Set<number>,
 *   stopStrings: string[],
 *   decodeText: (ids: number[]) => string,
 *   logprobs?: {top: number, tokenBytes: (id: number) => Uint8Array} | null,
 *   logitsProcessor?: LogitsProcessor | null,
 *   isAborted: () => boolean,
 *   onChoice?: (index: number) => void,
 *   onText: (text: string, logprobs: TokenLogprob[], index: number) => void,
 *   onFinish?: (finishReason: FinishReason, index: number) => void,
 *   now?: () => number,
 * }} job  `logprobs`: report each generated token's log-probability and the `top` most likely alternatives
 *   (in onText, with the text those tokens completed; the rest with the choice's last text, maybe "")
 * @returns {Promise<GenerationResult>}
 */
export async function generate(job) {
  const { model, promptIds } = job;
  const now = job.now ?? (() => performance.now());
  const start = now();
  const { keep, chunks } = planPrefill(model.tokens, promptIds, model.prefillChunkSize);
  model.truncate(keep);
  const result = {
    promptTokens: promptIds.length, cachedTokens: keep, prefillTokens: 0, completionTokens: 0,
    timeToFirstTokenS: 0, prefillS: 0, decodeS: 0, decodeSteps: 0, finishReasons: /** @type {FinishReason[]} */ ([]),
  };

  const n = job.n ?? 1;
  let promptLogits;
  for (const chunk of chunks) {
    if (job.isAborted()) break;
    promptLogits = await model.prefill(chunk);
    result.prefillTokens += chunk.length;
  }
  const prefilled = now();
  result.prefillS = (prefilled - start) / 1000;

  for (let index = 0; index < n; index++) {
    if (job.isAborted()) { // aborted while queued, during the prefill or an earlier choice: no token at all
      job.onChoice?.(index);
      job.onFinish?.("abort", index);
      result.finishReasons.push("abort");
      continue;
    }
    if (index > 0) model.truncate(promptIds.length); // drop the previous choice
    const logits = index === n - 1 ? promptLogits : promptLogits.slice(); // sampling adjusts them in place
    result.finishReasons.push(await generateChoice(job, index, logits, result, () => (now() - start) / 1000));
  }
  result.decodeS = (now() - prefilled) / 1000;
  return result;
}

/** Sample and decode one choice from the logits after the prompt. @returns {Promise<FinishReason>} */
async function generateChoice(job, index, logits, result, elapsedS) {
  const { model, sampling, stopTokenIds, logprobs, logitsProcessor } = job;
  job.onChoice?.(index);
  logitsProcessor?.reset();
  const counts = new Map();
  const detokenizer = new StreamingDetokenizer(job.decodeText);
  const stops = new StopStringFilter(job.stopStrings);
  let pending = []; // logprobs of the tokens whose text is not out yet
  let finishReason = /** @type {FinishReason} */ ("abort");
  let completionTokens = 0;
  for (;;) {
    adjustLogits(logits, sampling, counts);
    if (logitsProcessor) await logitsProcessor.processLogits(logits);
    const token = sampleToken(logits, sampling, job.random);
    logitsProcessor?.acceptToken(token);
    completionTokens++;
    result.completionTokens++;
    if (result.completionTokens === 1) result.timeToFirstTokenS = elapsedS();
    if (stopTokenIds.has(token)) {
      finishReason = "stop";
      break;
    }
    if (logprobs) pending.push(tokenLogprobs(logits, token, logprobs.top, logprobs.tokenBytes));
    counts.set(token, (counts.get(token) ?? 0) + 1);
    const text = stops.push(detokenizer.push(token));
    if (text) {
      job.onText(text, pending, index);
      pending = [];
    }
    if (stops.stopped) {
      finishReason = "stop";
      break;
    }
    if (completionTokens >= job.maxTokens) {
      finishReason = "length";
      break;
    }
    if (job.isAborted()) break;
    logits = await model.decode(token);
    result.decodeSteps++;
  }
  let rest = "";
  if (!stops.stopped) {
    const released = stops.push(detokenizer.flush());
    if (stops.stopped) finishReason = "stop";
    rest = stops.stopped ? released : released + stops.flush();
  }
  if (rest || pending.length) job.onText(rest, pending, index);
  job.onFinish?.(finishReason, index);
  return finishReason;
}
