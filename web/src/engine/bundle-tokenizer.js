// A bundle's tokenizer.json, as the engine uses it: the tokenizer (built at load: it decodes every answer), the
// same without its special tokens (built when a prompt first needs it: see PromptEncoder) and the token table
// (built on first use: logprobs and grammars). Measured in Chromium here, for a 128k vocabulary: building a
// tokenizer takes 0.35-0.45 s, the token table 0.1 s; the load used to build both tokenizers and the table.
import { Tokenizer } from "./tokenizer.js";
import { TokenTable } from "./token-table.js";

export class BundleTokenizer {
  /**
   * @param {Uint8Array} bytes tokenizer.json's (a view of its whole ArrayBuffer)
   * @param {{vocab_size: number, tokenizer_info?: {token_postproc_method?: string}}} chatConfig mlc-chat-config.json
   */
  static async load(bytes, chatConfig) {
    const special = (parse(bytes).added_tokens ?? []).filter((t) => t.special);
    return new BundleTokenizer(bytes, await Tokenizer.fromJSON(bytes.buffer), special, chatConfig);
  }

  constructor(bytes, tokenizer, special, chatConfig) {
    this.bytes = bytes;
    this.tokenizer = tokenizer;
    /** @type {Array<{content: string, id: number, lstrip?: boolean, rstrip?: boolean, normalized?: boolean}>}
     * the added tokens marked special */
    this.special = special;
    this.chatConfig = chatConfig;
    /** @type {Promise<Tokenizer> | null} */
    this.plainBuilt = null;
    /** @type {TokenTable | null} */
    this.table = null;
  }

  /** @param {string} text @returns {Int32Array} its ids, special tokens read as such */
  encode(text) {
    return this.tokenizer.encode(text);
  }

  /** @param {Int32Array} ids @returns {string} */
  decode(ids) {
    return this.tokenizer.decode(ids);
  }

  /** The tokenizer without its special tokens (tokenizer.json with those left out of added_tokens), which encodes
   * any text as plain text. */
  plain() {
    this.plainBuilt ??= (async () => {
      const json = parse(this.bytes);
      json.added_tokens = (json.added_tokens ?? []).filter((t) => !t.special);
      return Tokenizer.fromJSON(new TextEncoder().encode(JSON.stringify(json)).buffer);
    })();
    return this.plainBuilt;
  }

  /** @returns {TokenTable} */
  tokenTable() {
    this.table ??= new TokenTable(parse(this.bytes), this.chatConfig.vocab_size,
      this.chatConfig.tokenizer_info?.token_postproc_method ?? "byte_level");
    return this.table;
  }

  dispose() {
    this.tokenizer.dispose();
    this.plainBuilt?.then((plain) => plain.dispose(), () => {});
  }
}

/**
 * Instantiate web-tokenizers' WebAssembly module now, so that it compiles (on a thread of V8's) while the load
 * reads the bundle's first files: the first Tokenizer.fromJSON does it otherwise, and a warm load of the 1B model
 * then spent 0.5-0.6 s on its tokenizer, against 0.4 s (measured here, bench.warm_load). web-tokenizers exports
 * no way to start it, so this builds the smallest tokenizer there is.
 */
export function startTokenizerRuntime() {
  const smallest = {
    version: "1.0", truncation: null, padding: null, added_tokens: [], normalizer: null, pre_tokenizer: null,
    post_processor: null, decoder: null, model: { type: "WordLevel", vocab: { a: 0 }, unk_token: "a" },
  };
  Tokenizer.fromJSON(new TextEncoder().encode(JSON.stringify(smallest)).buffer)
    .then((tokenizer) => tokenizer.dispose(), () => {}); // a failure shows when the bundle's tokenizer is built
}

const parse = (bytes) => JSON.parse(new TextDecoder().decode(bytes));
