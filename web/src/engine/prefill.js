// Which prompt tokens must be prefilled, given what the KV cache already holds, and in which chunks.

/**
 * KV reuse across turns: the cache keeps the longest common prefix of what it holds and the new prompt, and
 * only the rest is prefilled, in chunks of at most `chunkSize` (the library's prefill_chunk_size). At least the
 * last prompt token is always prefilled: its logits choose the first new token.
 * @param {number[]} cached token ids the KV cache holds
 * @param {number[]} prompt token ids of the new prompt (non-empty)
 * @param {number} chunkSize
 * @returns {{keep: number, chunks: number[][]}} how many cached tokens to keep, and the chunks to prefill
 */
export function planPrefill(cached, prompt, chunkSize) {
  let keep = 0;
  while (keep < cached.length && keep < prompt.length && cached[keep] === prompt[keep]) keep++;
  keep = Math.min(keep, prompt.length - 1);
  const chunks = [];
  for (let start = keep; start < prompt.length; start += chunkSize) chunks.push(prompt.slice(start, start + chunkSize));
  return { keep, chunks };
}
