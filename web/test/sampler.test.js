import { test } from "node:test";
import assert from "node:assert/strict";
import { adjustLogits, argmax, sampleToken, seededRandom } from "../src/engine/sampler.js";
import { referenceSampleToken } from "./reference-sampler.js";

const NO_ADJUST = { temperature: 1, topP: 1, frequencyPenalty: 0, presencePenalty: 0, logitBias: [] };

test("seededRandom: same seed same stream, different seeds differ, values in [0, 1)", () => {
  const a = seededRandom(42), b = seededRandom(42), c = seededRandom(43);
  const xs = Array.from({ length: 1000 }, a);
  assert.deepEqual(Array.from({ length: 1000 }, b), xs);
  assert.notDeepEqual(Array.from({ length: 1000 }, c), xs);
  assert.ok(xs.every((x) => x >= 0 && x < 1));
  const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
  assert.ok(Math.abs(mean - 0.5) < 0.05, `mean ${mean}`);
  // seeds beyond 32 bits and negative seeds are distinct seeds, not truncated
  assert.notEqual(seededRandom(2 ** 40)(), seededRandom(0)());
  assert.notEqual(seededRandom(-1)(), seededRandom(1)());
});

test("argmax takes the lowest index on ties", () => {
  assert.equal(argmax(new Float32Array([1, 3, 3, 2])), 1);
  assert.equal(argmax(new Float32Array([-5])), 0);
});

test("temperature 0 is greedy whatever the random numbers", () => {
  const logits = new Float32Array([0.1, 2.5, 2.4, -1]);
  for (const u of [0, 0.5, 0.999]) assert.equal(sampleToken(logits, { temperature: 0, topP: 0.5 }, () => u), 1);
});

test("sampling follows softmax(logits / temperature)", () => {
  const logits = new Float32Array([Math.log(1), Math.log(2), Math.log(7)]); // probabilities 0.1, 0.2, 0.7
  const random = seededRandom(7);
  const counts = [0, 0, 0];
  for (let i = 0; i < 20000; i++) counts[sampleToken(logits, { temperature: 1, topP: 1 }, random)]++;
  [0.1, 0.2, 0.7].forEach((p, i) => assert.ok(Math.abs(counts[i] / 20000 - p) < 0.015, `${counts}`));
  // the inverse CDF by token id: u just below 0.1 gives token 0, just above gives token 1
  assert.equal(sampleToken(logits, { temperature: 1, topP: 1 }, () => 0.0999), 0);
  assert.equal(sampleToken(logits, { temperature: 1, topP: 1 }, () => 0.1001), 1);
  // a high temperature flattens: token 0 becomes more likely than 0.1
  let low = 0;
  for (let i = 0; i < 5000; i++) low += sampleToken(logits, { temperature: 100, topP: 1 }, random) === 0;
  assert.ok(low / 5000 > 0.3, `${low}`);
});

test("top_p keeps the smallest most-likely set reaching top_p, renormalised", () => {
  const logits = new Float32Array([Math.log(0.1), Math.log(0.2), Math.log(0.7)]);
  // top_p 0.7: only token 2 (0.7 >= 0.7)
  for (const u of [0, 0.5, 0.99]) assert.equal(sampleToken(logits, { temperature: 1, topP: 0.7 }, () => u), 2);
  // top_p 0.8: tokens 2 then 1, mass 0.9: u * 0.9 < 0.7 -> 2, else 1; never token 0
  assert.equal(sampleToken(logits, { temperature: 1, topP: 0.8 }, () => 0.7), 2);
  assert.equal(sampleToken(logits, { temperature: 1, topP: 0.8 }, () => 0.8), 1);
  const random = seededRandom(1);
  for (let i = 0; i < 2000; i++) assert.notEqual(sampleToken(logits, { temperature: 1, topP: 0.8 }, random), 0);
  // top_p 0 still keeps one token: the argmax
  assert.equal(sampleToken(logits, { temperature: 1, topP: 0 }, () => 0.99), 2);
});

test("top_p ties keep ascending token order", () => {
  const logits = new Float32Array([0, 5, 5, 5]);
  // three equal tokens of ~1/3 each: top_p 0.3 keeps token 1 only
  assert.equal(sampleToken(logits, { temperature: 1, topP: 0.3 }, () => 0.99), 1);
  assert.equal(sampleToken(logits, { temperature: 1, topP: 0.5 }, () => 0.99), 2);
});

test("same seed, same logits: same tokens", () => {
  const logits = new Float32Array(Array.from({ length: 1000 }, (_, i) => Math.sin(i) * 3));
  const draw = (seed) => { const r = seededRandom(seed); return Array.from({ length: 50 }, () => sampleToken(logits, { temperature: 0.8, topP: 0.95 }, r)); };
  assert.deepEqual(draw(5), draw(5));
  assert.notDeepEqual(draw(5), draw(6));
});

test("logit_bias adds to logits; -100 effectively bans a token, +100 forces it", () => {
  const logits = new Float32Array([1, 2, 3]);
  adjustLogits(logits, { ...NO_ADJUST, logitBias: [[2, -100], [0, 0.5]] }, new Map());
  assert.deepEqual(Array.from(logits), [1.5, 2, -97]);
  assert.equal(argmax(logits), 1);
});

test("presence and frequency penalties follow OpenAI's formula over generated counts", () => {
  const logits = new Float32Array([5, 5, 5, 5]);
  adjustLogits(logits, { ...NO_ADJUST, presencePenalty: 0.5, frequencyPenalty: 0.25 }, new Map([[1, 1], [2, 4]]));
  assert.deepEqual(Array.from(logits), [5, 5 - 0.5 - 0.25, 5 - 0.5 - 1, 5]);
  const negative = new Float32Array([5, 5]);
  adjustLogits(negative, { ...NO_ADJUST, presencePenalty: -1, frequencyPenalty: 0 }, new Map([[1, 3]]));
  assert.deepEqual(Array.from(negative), [5, 6]); // a negative penalty encourages repetition
});

// Equivalence with the sort-based sampler that sampleToken replaced (test/reference-sampler.js, an independent
// copy): the same logits and the same uniform numbers must give the same token, and one number per draw.

/** Logit vectors of `length` from a seeded stream, shaped as the sampler meets them and as its edge cases. */
function logitVectors(length, seed) {
  const random = seededRandom(seed);
  const gaussian = () => (random() + random() + random() + random() + random() + random() - 3) * Math.SQRT2;
  const make = (f) => Float32Array.from({ length }, f);
  const peaked = make(() => 2.5 * gaussian());
  for (let i = 0; i < 4; i++) peaked[Math.floor(random() * length)] = 12 + 6 * random();
  return {
    gaussian: make(() => 3 * gaussian()),
    peaked,
    flat: make(() => 1.5),
    ties: make(() => Math.round(2 * gaussian()) / 2), // few distinct values, each shared by many tokens
    banned: make(() => (random() < 0.3 ? -Infinity : 2 * gaussian())), // as a logit_bias of -Infinity would leave
    biased: make(() => (random() < 0.5 ? gaussian() - 100 : gaussian())), // logit_bias -100 on half the vocabulary
    nearlyEqual: make(() => 1 + 1e-6 * gaussian()), // distinct weights that share their high bits
  };
}

/** A random stream that counts its calls. */
function counting(random) {
  const counted = () => { counted.calls++; return random(); };
  counted.calls = 0;
  return counted;
}

/** Draws from both samplers with two copies of one stream (and a few edge values of u); asserts they agree. */
function assertSameDraws(logits, params, seed, draws, label) {
  const special = [0, 0.5, 1 - 2 ** -53];
  const stream = (s) => {
    const random = seededRandom(s);
    let i = 0;
    return () => (i < special.length ? special[i++] : random());
  };
  const ours = counting(stream(seed)), theirs = counting(stream(seed));
  for (let i = 0; i < draws; i++) {
    const expected = referenceSampleToken(logits, params, theirs);
    assert.equal(sampleToken(logits, params, ours), expected, `${label} draw ${i}`);
    assert.equal(ours.calls, theirs.calls, `${label} draw ${i}: random() calls`);
  }
  assert.equal(ours.calls, params.temperature === 0 ? 0 : draws, label);
}

const TEMPERATURES = [1e-3, 0.2, 0.7, 1, 5, 100];
const TOP_PS = [0, 0.1, 0.5, 0.9, 0.95, 1 - 1e-12, 1];

test("sampleToken draws what the sort-based reference draws (small vocabularies, every setting)", () => {
  for (const length of [1, 2, 5, 100, 1000]) {
    for (const [name, logits] of Object.entries(logitVectors(length, length))) {
      for (const [t, temperature] of [0, ...TEMPERATURES].entries()) {
        for (const topP of TOP_PS) {
          const label = `${name} n=${length} t=${temperature} p=${topP}`;
          assertSameDraws(logits, { temperature, topP }, 100 * length + t, 12, label);
        }
      }
    }
  }
});

test("sampleToken draws what the reference draws over 49,152 logits", () => {
  const vectors = logitVectors(49152, 7);
  for (const name of ["peaked", "gaussian", "ties", "banned"]) {
    for (const [temperature, topP] of [[0.2, 0.9], [0.7, 0.95], [1, 0.5], [1, 1], [100, 0.9], [1e-3, 0.1]]) {
      assertSameDraws(vectors[name], { temperature, topP }, 3, 4, `${name} t=${temperature} p=${topP}`);
    }
  }
});

test("sampleToken matches the reference where NaN logits make the weights NaN", () => {
  const logits = new Float32Array([1, NaN, 3, 2, NaN, 0.5]);
  for (const topP of [0.5, 1]) assertSameDraws(logits, { temperature: 1, topP }, 1, 8, `top_p ${topP}`);
  const first = new Float32Array([NaN, 1, 2]); // argmax keeps index 0: every weight is NaN
  for (const topP of [0.5, 1]) assertSameDraws(first, { temperature: 1, topP }, 2, 4, `NaN first, top_p ${topP}`);
});

test("a fixed seed over fixed logits gives the reference's draws", () => {
  const logits = logitVectors(49152, 2024).peaked;
  const params = { temperature: 0.2, topP: 0.9 }; // the model's defaults, as the chat page samples
  const draw = (sample) => {
    const random = seededRandom(42);
    return Array.from({ length: 20 }, () => sample(logits, params, random));
  };
  const tokens = draw(sampleToken);
  assert.deepEqual(tokens, draw(referenceSampleToken));
  assert.ok(new Set(tokens).size > 1, `${tokens}`); // a sample, not only the argmax
});
