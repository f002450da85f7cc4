// Test doubles for the pure-logic tests: a byte-level tokenizer and a scripted language model.

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
