// Milliseconds per sampled token, the sort-based reference (web/test/reference-sampler.js) against sampleToken,
// on synthetic logits shaped like a language model's: a Gaussian bulk (sd 2.5) and a few tokens 12-18 above it,
// at random ids. Run: node web/bench/sampler.bench.mjs. Prints a table, then the same rows as one JSON line.
import { adjustLogits, sampleToken, seededRandom } from "../src/engine/sampler.js";
import { referenceSampleToken } from "../test/reference-sampler.js";

const NONE = { frequencyPenalty: 0, presencePenalty: 0, logitBias: [] };
const SETTINGS = {
  "greedy": { ...NONE, temperature: 0, topP: 1 },
  "t=0.2 top_p=0.9": { ...NONE, temperature: 0.2, topP: 0.9 },
  "t=1 top_p=1": { ...NONE, temperature: 1, topP: 1 },
  "t=0.7 top_p=0.95 +penalties": {
    temperature: 0.7, topP: 0.95, frequencyPenalty: 0.5, presencePenalty: 0.5, logitBias: [[0, -100], [1, 5]],
  },
};

function syntheticLogits(vocab, random) {
  const gaussian = () => (random() + random() + random() + random() + random() + random() - 3) * Math.SQRT2;
  const logits = Float32Array.from({ length: vocab }, () => 2.5 * gaussian());
  for (let i = 0; i < 8; i++) logits[Math.floor(random() * vocab)] = 12 + 6 * random();
  return logits;
}

/** Median ms of adjustLogits + sample (the median: another process may share the CPU), over >= 5 calls and 1 s. */
function time(sample, logits, params, counts) {
  const work = new Float32Array(logits.length), random = seededRandom(1), tokens = [], times = [];
  for (let spent = 0; times.length < 5 || spent < 1000; spent += times.at(-1)) {
    work.set(logits);
    const start = performance.now();
    adjustLogits(work, params, counts);
    tokens.push(sample(work, params, random));
    times.push(performance.now() - start);
  }
  times.sort((a, b) => a - b);
  return { ms: times[times.length >> 1], tokens };
}

const rows = [];
for (const vocab of [49152, 262144]) {
  const random = seededRandom(vocab);
  const logits = syntheticLogits(vocab, random);
  const generated = Array.from({ length: 200 }, () => [Math.floor(random() * vocab), 1 + Math.floor(random() * 3)]);
  const counts = new Map(generated); // for the penalties: 200 tokens generated 1-3 times each
  for (const [setting, params] of Object.entries(SETTINGS)) {
    const old = time(referenceSampleToken, logits, params, counts), now = time(sampleToken, logits, params, counts);
    const same = old.tokens.every((token, i) => i >= now.tokens.length || token === now.tokens[i]); // same seed
    rows.push({ vocab, setting, oldMs: +old.ms.toFixed(3), newMs: +now.ms.toFixed(3), sameTokens: same });
  }
}
console.table(rows);
console.log(JSON.stringify(rows));
