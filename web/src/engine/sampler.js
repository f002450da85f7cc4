// Choosing the next token from the model's logits, on the CPU in JavaScript.
//
// Why not the library's GPU helpers (softmax_with_temperature, argsort_probs, sample_with_top_p, ...)? The
// logits of one step are 49152 floats (192 KB): copying them to the CPU costs far less than one decode step,
// while on WebGPU-on-SwiftShader every extra dispatch costs 0.2-1 ms and the 13-pass argsort ~17 ms. In JS the
// whole chain (bias, penalties, temperature, top-p, a seeded draw) is deterministic across devices (same seed,
// same output) and testable in node without a browser. Measured in node on a 2-core VM
// (web/bench/sampler.bench.mjs), per token over 49,152 / 262,144 logits: 0.2 / 0.7 ms at temperature 0.2 with
// top_p 0.9 (the model's defaults), 0.7-0.9 / 3.6-4.8 ms at temperature 0.7-1. The floor is one Math.exp
// (~10 ns) per token whose weight can still change the softmax's sum, which must stay bit-identical to keep
// the tokens a seed gives; top-p sorts only its candidates.

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
 * renormalised, and sampled with one uniform number from `random`: the first token, walking the kept tokens
 * from the most likely (by id when top_p >= 1), whose cumulative weight exceeds u * their total weight.
 * @param {Float32Array} logits already adjusted (see adjustLogits)
 * @param {{temperature: number, topP: number}} params temperature >= 0, finite
 * @param {() => number} random
 */
export function sampleToken(logits, { temperature, topP }, random) {
  const best = argmax(logits);
  if (temperature === 0) return best;
  const max = logits[best];
  if (topP >= 1) { // by id over all tokens, the skipped ones weighing 0: they could not move the cumulative weight
    const total = weighById(logits, max, temperature);
    const u = random();
    // where rounding leaves no sum above u * total, the last token with any weight (maybe one weighed as 0)
    return u * total < total ? draw(null, logits.length, total, u) : lastWithWeight(logits, max, temperature);
  }
  const [count, total] = weigh(logits, max, temperature);
  const u = random();
  if (Number.isNaN(total)) return sampleEveryToken(logits, max, temperature, topP, total, u);
  const [kept, mass] = nucleus(count, total, topP);
  if (kept === 0) return sampleEveryToken(logits, max, temperature, topP, total, u);
  return tokens[draw(order, kept, mass, u)];
}

// Scratch arrays, grown to the vocabulary and reused: allocating two per token cost 0.05-0.15 ms at 49,152.
let tokens = new Uint32Array(0); // the tokens weigh() computed a weight for, ascending
let weights = new Float64Array(0); // their weights (in sampleEveryToken: every token's, by id)
let words = new Uint32Array(0); // weights as 32-bit words: the high word's top bits order positive doubles
let order = new Uint32Array(0); // positions in tokens/weights, most likely first
let spare = new Uint32Array(0); // the top-p candidates' positions, ascending
let counts = new Uint32Array(0); // sortByWeight's buckets
const HIGH = new Uint8Array(Uint16Array.of(1).buffer)[0]; // index of a double's high word: 1 on little-endian

function reserve(length) {
  if (weights.length >= length) return;
  tokens = new Uint32Array(length);
  weights = new Float64Array(length);
  words = new Uint32Array(weights.buffer);
  order = new Uint32Array(length);
  spare = new Uint32Array(length);
  counts = new Uint32Array(2 * length + 2);
}

// A weight exp(d / temperature) with d below temperature * (log(total) - SKIP) is under total * 2^-54 / 2.9: less
// than half an ulp of total or of any later running sum, so adding it changes nothing.
const SKIP = 38.5; // 54 * ln 2 = 37.43, plus a margin far above the rounding of log, exp and the division
const BLOCK = 1024; // tokens per cut: updating it after every token was 10% slower

/**
 * The weights exp((logit - max) / temperature) into tokens/weights and their sum, in token id order as the
 * reference sums them, skipping the tokens whose weight cannot change that sum: at temperature 0.2 most of the
 * vocabulary, and each Math.exp costs ~10 ns.
 */
function weigh(logits, max, temperature) {
  reserve(logits.length);
  let count = 0, total = 0;
  for (let start = 0; start < logits.length; start += BLOCK) {
    const cut = temperature * (Math.log(total) - SKIP), end = Math.min(start + BLOCK, logits.length);
    for (let i = start; i < end; i++) {
      const d = logits[i] - max;
      if (d < cut) continue;
      const w = Math.exp(d / temperature);
      tokens[count] = i;
      weights[count++] = w;
      total += w;
    }
  }
  return [count, total];
}

/**
 * weigh() by token id into weights, the skipped tokens weighing 0, for top_p >= 1: listing the tokens weighed,
 * which only top-p needs, made this loop 15% slower at temperature 1.
 */
function weighById(logits, max, temperature) {
  reserve(logits.length);
  let total = 0;
  for (let start = 0; start < logits.length; start += BLOCK) {
    const cut = temperature * (Math.log(total) - SKIP), end = Math.min(start + BLOCK, logits.length);
    for (let i = start; i < end; i++) {
      const d = logits[i] - max;
      total += weights[i] = d < cut ? 0 : Math.exp(d / temperature);
    }
  }
  return total;
}

/** The last token with a nonzero weight (token 0 if none), as the reference returns when no sum exceeds u * total. */
function lastWithWeight(logits, max, temperature) {
  let i = logits.length - 1;
  while (i > 0 && Math.exp((logits[i] - max) / temperature) === 0) i--;
  return i;
}

// Weights are bucketed by their top bits (exponent and 3 mantissa bits: an eighth of an octave per bucket),
// which order positive doubles as the weights themselves.
const BUCKET_SHIFT = 17;
const TOP = 0x3ff << 3; // the bucket of 1, the largest weight (the argmax's)
const bucketMass = new Float64Array(54 << 3); // weight per bucket from TOP down to total * 2^-54 (total >= 1)
const probe = new Float64Array(1);
const probeWords = new Uint32Array(probe.buffer);

/**
 * The reference's top-p cut without sorting the vocabulary: sorts into `order` only the candidates, the tokens
 * at least as heavy as some weight t, and counts the first of them whose cumulative weight reaches topP * total.
 * They are also the first tokens of the reference's order, as t is above all that weigh() skipped (under
 * total * 2^-54). t is the larger of `least`, above which the tokens hold more than top_p of the total, and the
 * bottom of the lowest bucket needed for top_p of it.
 * @returns {[number, number]} how many are kept and their weight; [0, 0] where top_p would reach the tokens
 *   weigh() skipped, or is no number in [0, 1)
 */
function nucleus(count, total, topP) {
  const least = ((1 - topP) * total) / count / 2; // tokens below it hold under half of the other 1 - top_p
  let survivors = 0;
  for (let k = 0; k < count; k++) { // branch-free: an `if` that ~30% pass unpredictably took 0.5 ms more
    spare[survivors] = k;
    survivors += +(weights[k] >= least);
  }
  probe[0] = total * 2 ** -54;
  const floor = probeWords[HIGH] >>> BUCKET_SHIFT; // weigh() skipped tokens in this bucket or below
  bucketMass.fill(0, 0, TOP - floor);
  for (let i = 0; i < survivors; i++) {
    const bucket = words[2 * spare[i] + HIGH] >>> BUCKET_SHIFT;
    if (bucket > floor) bucketMass[TOP - bucket] += weights[spare[i]];
  }
  const limit = topP * total;
  let lowest = TOP, sum = bucketMass[0];
  // With this margin, the candidates' sum in sorted order below reaches the limit too: rounding moves a sum of
  // fewer than 4 million positive terms by less than 1e-9 of it.
  while (sum < limit * (1 + 1e-9)) {
    if (--lowest === floor) return [0, 0];
    sum += bucketMass[TOP - lowest];
  }
  let candidates = 0;
  for (let i = 0; i < survivors; i++) {
    spare[candidates] = spare[i];
    candidates += +(words[2 * spare[i] + HIGH] >>> BUCKET_SHIFT >= lowest);
  }
  sortByWeight(candidates);
  let kept = 0, mass = 0;
  while (kept < candidates && (kept === 0 || mass < limit)) mass += weights[order[kept++]];
  return [kept, mass];
}

const byWeight = (x, y) => weights[y] - weights[x] || x - y;

/**
 * Sorts the positions spare[0, count) (ascending) into order[0, count), by weight, largest first, then position
 * (that is, token id) ascending, as the reference's comparator does. A comparator sort costs ~2 ms for 10,000
 * candidates; here one stable counting-sort pass on the weights' high words orders them up to buckets that
 * hold ~1 token each, and only the tokens within a bucket are compared.
 */
function sortByWeight(count) {
  let high = 0, low = -1 >>> 0;
  for (let i = 0; i < count; i++) {
    const word = words[2 * spare[i] + HIGH];
    if (word > high) high = word;
    if (word < low) low = word;
  }
  const shift = Math.max(0, Math.clz32(count) - Math.clz32(high - low)); // at most 2 * count buckets
  const buckets = ((high - low) >>> shift) + 1;
  counts.fill(0, 0, buckets + 1);
  for (let i = 0; i < count; i++) counts[((high - words[2 * spare[i] + HIGH]) >>> shift) + 1]++;
  for (let b = 1; b < buckets; b++) counts[b] += counts[b - 1];
  for (let i = 0; i < count; i++) order[counts[(high - words[2 * spare[i] + HIGH]) >>> shift]++] = spare[i];
  let start = 0; // counts[b] is now where bucket b ends
  for (let b = 0; b < buckets; b++) {
    if (counts[b] - start > 1) sortRun(start, counts[b]);
    start = counts[b];
  }
}

/** Sorts order[start, end), which is in ascending position order, by byWeight. */
function sortRun(start, end) {
  if (end - start > 32) {
    order.subarray(start, end).sort(byWeight); // a bucket of near-equal weights (a flat distribution)
    return;
  }
  for (let i = start + 1; i < end; i++) {
    const position = order[i], weight = weights[position];
    let j = i;
    for (; j > start && weights[order[j - 1]] < weight; j--) order[j] = order[j - 1];
    order[j] = position;
  }
}

/**
 * The position in weights (the k-th of `ranked`, or the k-th when null) of the first of `count` tokens whose
 * cumulative weight exceeds u * mass, or where rounding left none above it, of the last one with any weight.
 */
function draw(ranked, count, mass, u) {
  const target = u * mass;
  let cumulative = 0, last = 0;
  for (let k = 0; k < count; k++) {
    const position = ranked === null ? k : ranked[k];
    const weight = weights[position];
    if (weight === 0) continue;
    cumulative += weight;
    last = position;
    if (cumulative > target) return position;
  }
  return last;
}

/**
 * The reference algorithm over the whole vocabulary, for what nucleus() cannot settle: NaN weights (the
 * reference's order then comes from its sort), a top_p so close to 1 that it reaches the skipped tokens, or
 * one outside [0, 1].
 */
function sampleEveryToken(logits, max, temperature, topP, total, u) {
  const all = order.subarray(0, logits.length);
  for (let i = 0; i < logits.length; i++) {
    all[i] = i;
    weights[i] = Math.exp((logits[i] - max) / temperature);
  }
  all.sort(byWeight);
  let kept = 0, mass = 0;
  while (kept < all.length && (kept === 0 || mass < topP * total)) mass += weights[all[kept++]];
  return draw(all, kept, mass, u); // positions are token ids here
}
