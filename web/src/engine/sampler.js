// Choosing the next token from the model's logits, on the CPU in JavaScript.
//
// Why not the library's GPU helpers (softmax_with_temperature, argsort_probs, sample_with_top_p, ...)? The
// logits of one step are 49152 floats (192 KB): copying them to the CPU costs far less than one decode step,
// while on WebGPU-on-SwiftShader every extra dispatch costs 0.2-1 ms and the 13-pass argsort ~17 ms. In JS the
// whole chain (bias, penalties, temperature, top-p, a seeded draw) takes a few ms, is deterministic across
// devices (same seed, same output), and is testable in node without a browser.

/**
 * @typedef {{temperature: number, topP: number, frequencyPenalty: number, presencePenalty: number,
 *            logitBias: Array<[number, number]>}} SamplingParams
 */

/**
 * A seeded PRNG (sfc32, state from splitmix32 of the seed's two 32-bit halves): uniform floats in [0, 1).
 * @param {number} seed any safe integer
 * @returns {() => number}
 */
export function seededRandom(seed) {
  const bits = BigInt.asUintN(64, BigInt(seed));
  let mix = Number(bits & 0xffffffffn) ^ Math.imul(Number(bits >> 32n), 0x9e3779b9);
  const splitmix32 = () => {
    mix = (mix + 0x9e3779b9) | 0;
    let z = mix;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
  let a = splitmix32(), b = splitmix32(), c = splitmix32(), d = splitmix32();
  return () => {
    const t = (((a + b) | 0) + d) | 0;
    d = (d + 1) | 0;
    a = b ^ (b >>> 9);
    b = (c + (c << 3)) | 0;
    c = (c << 21) | (c >>> 11);
    c = (c + t) | 0;
    return (t >>> 0) / 4294967296;
  };
}

/**
 * OpenAI's logit_bias, then presence and frequency penalties over the tokens generated so far:
 * logit[t] += bias[t]; logit[t] -= presence * (count[t] > 0) + frequency * count[t]. Modifies `logits`.
 * @param {Float32Array} logits
 * @param {SamplingParams} params
 * @param {Map<number, number>} counts how often each token was generated in this completion
 */
export function adjustLogits(logits, params, counts) {
  for (const [token, bias] of params.logitBias) logits[token] += bias;
  if (params.presencePenalty === 0 && params.frequencyPenalty === 0) return;
  for (const [token, count] of counts) logits[token] -= params.presencePenalty + params.frequencyPenalty * count;
}

/** Index of the largest logit (the lowest such index on ties). @param {Float32Array} logits */
export function argmax(logits) {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
  return best;
}

/**
 * Draw a token: argmax at temperature 0; otherwise softmax(logits / temperature) cut to the smallest set of
 * most likely tokens whose probability reaches top_p (at least one; ties in ascending token order),
 * renormalised, and sampled with one uniform number from `random`.
 * @param {Float32Array} logits already adjusted (see adjustLogits)
 * @param {{temperature: number, topP: number}} params
 * @param {() => number} random
 */
export function sampleToken(logits, { temperature, topP }, random) {
  const best = argmax(logits);
  if (temperature === 0) return best;
  const max = logits[best];
  const weights = new Float64Array(logits.length);
  let total = 0;
  for (let i = 0; i < logits.length; i++) total += weights[i] = Math.exp((logits[i] - max) / temperature);
  const u = random();
  if (topP >= 1) return drawInOrder(weights, null, weights.length, total, u);
  const order = Uint32Array.from(weights.keys()).sort((x, y) => weights[y] - weights[x] || x - y);
  let kept = 0, mass = 0;
  while (kept < order.length && (kept === 0 || mass < topP * total)) mass += weights[order[kept++]];
  return drawInOrder(weights, order, kept, mass, u);
}

/** The first token (in `order`, or by id) whose cumulative weight exceeds u * mass, among the first `count`. */
function drawInOrder(weights, order, count, mass, u) {
  const target = u * mass;
  let cumulative = 0, last = 0;
  for (let k = 0; k < count; k++) {
    const token = order ? order[k] : k;
    if (weights[token] === 0) continue;
    cumulative += weights[token];
    last = token;
    if (cumulative > target) return token;
  }
  return last; // rounding left nothing above the target: the last token with any weight
}
