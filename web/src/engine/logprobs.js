// OpenAI's `logprobs`: for each generated token, its log-probability and the most likely alternatives, in
// OpenAI's shape ({token, logprob, bytes, top_logprobs: [{token, logprob, bytes}]}). The distribution is the
// softmax of the logits the sampler drew from after logit_bias, the penalties and a grammar's mask, before
// temperature and top_p (as OpenAI's, it does not depend on temperature, and is defined at temperature 0).

/** @typedef {{token: string, logprob: number, bytes: number[]}} TopLogprob */
/** @typedef {TopLogprob & {top_logprobs: TopLogprob[]}} TokenLogprob */

const utf8 = new TextDecoder("utf-8", { fatal: false });

/**
 * @param {Float32Array} logits what the sampler drew `token` from
 * @param {number} token
 * @param {number} top how many of the most likely tokens to list (0-20), most likely first (ties by id)
 * @param {(id: number) => Uint8Array} tokenBytes the token's UTF-8 bytes
 * @returns {TokenLogprob}
 */
export function tokenLogprobs(logits, token, top, tokenBytes) {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i] > max) max = logits[i];
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i] - max);
  const logZ = max + Math.log(sum);
  const entry = (id) => {
    const bytes = tokenBytes(id);
    return { token: utf8.decode(bytes), logprob: logits[id] - logZ, bytes: Array.from(bytes) };
  };
  return { ...entry(token), top_logprobs: topTokens(logits, top).map(entry) };
}

/** The ids of the `k` largest finite logits, largest first (ties: lower id first). */
function topTokens(logits, k) {
  const best = [];
  for (let i = 0; i < logits.length && k > 0; i++) {
    const value = logits[i];
    if (value === -Infinity || (best.length === k && value <= logits[best[k - 1]])) continue;
    let at = best.length === k ? k - 1 : best.length;
    while (at > 0 && logits[best[at - 1]] < value) {
      best[at] = best[at - 1];
      at--;
    }
    best[at] = i;
  }
  return best;
}
