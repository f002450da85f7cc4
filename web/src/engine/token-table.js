// The bundle's token table: every token id's string as tokenizer.json spells it (the vocabulary plus the added
// tokens), which XGrammar's TokenizerInfo takes, and each token's bytes, for logprobs.

/** GPT-2's byte-level alphabet: byte b is written as this character (printable bytes as themselves). */
function byteLevelDecoder() {
  const printable = (b) => (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
  const decoder = new Map();
  let shifted = 0;
  for (let b = 0; b < 256; b++) decoder.set(printable(b) ? String.fromCharCode(b) : String.fromCharCode(256 + shifted++), b);
  return decoder;
}

const encoder = new TextEncoder();

export class TokenTable {
  /**
   * @param {(id: number) => string | undefined} tokenOf the tokenizer's string of token `id`
   * @param {Set<number>} special the ids of the special tokens
   * @param {number} vocabSize the model's (the logits' length; may exceed the tokenizer's, the rest unused)
   * @param {"byte_level" | "byte_fallback" | "raw"} postprocessing how token strings map to bytes (mlc-chat-config's
   *   tokenizer_info.token_postproc_method): GPT-2 byte-level characters, SentencePiece's "▁" and <0xNN>, or as is
   */
  constructor(tokenOf, special, vocabSize, postprocessing) {
    /** @type {string[]} */
    this.tokens = Array.from({ length: vocabSize }, (_, id) => tokenOf(id) ?? "");
    this.special = special;
    this.postprocessing = postprocessing;
    this.byteLevel = postprocessing === "byte_level" ? byteLevelDecoder() : null;
  }

  /** The bytes token `id` stands for (a special token: its text). @param {number} id @returns {Uint8Array} */
  bytes(id) {
    const token = this.tokens[id] ?? "";
    if (this.special.has(id)) return encoder.encode(token);
    if (this.byteLevel) return Uint8Array.from(token, (c) => this.byteLevel.get(c) ?? 0x3f);
    if (this.postprocessing === "byte_fallback") {
      const byte = /^<0x([0-9A-Fa-f]{2})>$/.exec(token);
      return byte ? Uint8Array.of(parseInt(byte[1], 16)) : encoder.encode(token.replaceAll("\u2581", " "));
    }
    return encoder.encode(token);
  }
}
