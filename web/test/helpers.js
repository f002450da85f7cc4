// Test doubles for the pure-logic tests: a byte-level tokenizer, a scripted language model, and a stand-in for the
// engine's worker.
import { Engine } from "../src/engine/index.js";
import { Reply } from "../src/engine/protocol.js";

/** A byte-level "tokenizer": token i is the byte sequence vocab[i]; decoding replaces broken UTF-8 with U+FFFD,
 * as Hugging Face byte-level BPE decoders do. */
export function byteTokenizer(vocab) {
  const decoder = new TextDecoder("utf-8", { fatal: false });
  return {
    decode: (ids) => decoder.decode(Uint8Array.from(ids.flatMap((id) => vocab[id]))),
    /** ids of `text`, one token per byte (each byte's token is its value + offset) */
    bytesOf: (text) => Array.from(new TextEncoder().encode(text)),
  };
}

/** Token ids 0..255 are the bytes; 256 is an end-of-text token. */
export const BYTES = byteTokenizer([...Array.from({ length: 256 }, (_, b) => [b]), []]);
export const END = 256;

/**
 * A LanguageModel (see generation.js) whose logits pick `next(tokens)` with a clear margin. Records what it was
 * asked to prefill and decode, to check KV reuse and chunking.
 */
export class ScriptedModel {
  constructor(next, { prefillChunkSize = 4, vocab = 257 } = {}) {
    this.next = next;
    this.prefillChunkSize = prefillChunkSize;
    this.vocab = vocab;
    this.tokens = [];
    this.calls = [];
  }

  truncate(length) {
    this.calls.push(["truncate", length]);
    this.tokens.length = Math.min(this.tokens.length, length);
  }

  async prefill(ids) {
    this.calls.push(["prefill", ids.length]);
    this.tokens.push(...ids);
    return this.logits();
  }

  async decode(id) {
    this.calls.push(["decode", id]);
    this.tokens.push(id);
    return this.logits();
  }

  logits() {
    const logits = new Float32Array(this.vocab);
    logits[this.next(this.tokens)] = 10;
    return logits;
  }
}

export const GOOD = "http://127.0.0.1:8000/bundles/0ffebf7013271dba/";
export const INFO = {
  bundleId: "0ffebf7013271dba", model: "m", device: "wasm", chatTemplate: true, vocabSize: 100, temperature: 1, topP: 1,
};

/** Records what the engine sends it and answers as the test says. */
export class StandInWorker {
  constructor() {
    this.sent = [];
    this.terminated = false;
  }

  postMessage(message) {
    this.sent.push(message);
  }

  terminate() {
    this.terminated = true;
  }

  /** The worker's answer to its `index`-th message. */
  answer(index, reply) {
    this.onmessage({ data: { id: this.sent[index].id, ...reply } });
  }
}

export function startEngine() {
  const workers = [];
  const engine = new Engine(() => workers[workers.push(new StandInWorker()) - 1]);
  return { engine, workers };
}

/** An engine whose (stand-in) worker has loaded a bundle with INFO. */
export async function loadedEngine() {
  const { engine, workers } = startEngine();
  const loading = engine.load(GOOD);
  workers[0].answer(0, { type: Reply.result, value: INFO });
  await loading;
  workers[0].sent.length = 0;
  return { engine, workers, worker: workers[0] };
}
