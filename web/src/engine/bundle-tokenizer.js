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
    /** @type {Array<{content: string, id: number, normalized?: boolean}>} the added tokens marked special */
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

const parse = (bytes) => JSON.parse(new TextDecoder().decode(bytes));
