// The sort-based sampleToken that sampler.js replaced, kept unchanged as an independent reference: the equivalence
// tests and web/bench/sampler.bench.mjs check the new sampler against it (same tokens for the same random numbers).

/**
 * @param {Float32Array} logits
 * @param {{temperature: number, topP: number}} params
 * @param {() => number} random
 */
export function referenceSampleToken(logits, { temperature, topP }, random) {
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

function argmax(logits) {
  let best = 0;
  for (let i = 1; i < logits.length; i++) if (logits[i] > logits[best]) best = i;
  return best;
}

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
  return last;
}
