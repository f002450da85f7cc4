// A bundle's tokenizer.json, as the engine uses it: the tokenizer (built at load: it decodes every answer), the
// same without its special tokens (built when a prompt first needs it: see PromptEncoder) and the token table
// (built on first use: logprobs and grammars).
//
// Hugging Face's tokenizers.js (pure JavaScript), not their Rust library compiled to WebAssembly (web-tokenizers,
// which WebLLM uses): a WebAssembly memory never shrinks, so the Rust tokenizer kept the peak of its construction
// for good (42 MB of memory touched for the 0.5B synthetic bundle's 152k vocabulary), where V8 collects the
// construction's garbage; and its WebAssembly came inlined in the worker's script, as base64 (the script: 6.5 MB
// then, 1.8 MB now). Measured in Chromium here, the 0.5B bundle on 1 thread, from the page before the engine: a
// warm load rose 554 -> 500 MB, with a 512-token chat 603 -> 578 MB.
import { Tokenizer } from "@huggingface/tokenizers";
import { TokenTable } from "./token-table.js";

// tokenizer_config for tokenizers.js: decode as the Rust library does, without the clean-up of spaces around
// punctuation (an option of transformers', which tokenizers.js turns on unless told)
const CONFIG = { clean_up_tokenization_spaces: false };

export class BundleTokenizer {
  /**
   * @param {() => Promise<any>} readJson reads and parses tokenizer.json (again for the plain tokenizer, which
   *   is rarely needed: the parsed file is not kept)
   * @param {{vocab_size: number, tokenizer_info?: {token_postproc_method?: string}}} chatConfig mlc-chat-config.json
   */
  static async load(readJson, chatConfig) {
    const json = await readJson();
    const special = (json.added_tokens ?? []).filter((t) => t.special);
    return new BundleTokenizer(build(json), readJson, special, chatConfig);
  }

  constructor(tokenizer, readJson, special, chatConfig) {
    this.tokenizer = tokenizer;
    this.readJson = readJson;
    /** @type {Array<{content: string, id: number, lstrip?: boolean, rstrip?: boolean, normalized?: boolean}>}
     * the added tokens marked special */
    this.special = special;
    this.chatConfig = chatConfig;
    /** @type {Promise<{encode(text: string): Int32Array}> | null} */
    this.plainBuilt = null;
    /** @type {TokenTable | null} */
    this.table = null;
  }

  /** @param {string} text @returns {Int32Array} its ids, special tokens read as such (no BOS added) */
  encode(text) {
    return encodeWith(this.tokenizer, text);
  }

  /** @param {ArrayLike<number>} ids @returns {string} the text; ids the tokenizer has no token for (a
   * vocabulary padded past the tokenizer's) are left out, as the Rust library does */
  decode(ids) {
    const known = Array.from(ids).filter((id) => this.tokenizer.id_to_token(id) !== undefined);
    return known.length ? this.tokenizer.decode(known) : "";
  }

  /** The tokenizer without its special tokens (tokenizer.json with those left out of added_tokens), which encodes
   * any text as plain text. */
  plain() {
    this.plainBuilt ??= this.readJson().then((json) => {
      const plain = build({ ...json, added_tokens: (json.added_tokens ?? []).filter((t) => !t.special) });
      return { encode: (text) => encodeWith(plain, text) };
    });
    return this.plainBuilt;
  }

  /** @returns {TokenTable} */
  tokenTable() {
    this.table ??= new TokenTable((id) => this.tokenizer.id_to_token(id), new Set(this.special.map((t) => t.id)),
      this.chatConfig.vocab_size, this.chatConfig.tokenizer_info?.token_postproc_method ?? "byte_level");
    return this.table;
  }
}

/** tokenizers.js's tokenizer of a parsed tokenizer.json. Its Digits pre-tokenizer splits off ASCII digits only
 * (JavaScript's \d), the Rust library's any numeric character (Unicode N: "٣", "４", "½"), so that one is given as
 * the equivalent Split. */
function build(json) {
  const digitsAsSplit = (pre) => {
    if (pre?.type === "Sequence") return { ...pre, pretokenizers: pre.pretokenizers.map(digitsAsSplit) };
    if (pre?.type !== "Digits") return pre;
    return { type: "Split", pattern: { Regex: pre.individual_digits ? "\\p{N}" : "\\p{N}+" }, behavior: "Isolated",
      invert: false };
  };
  const model = { ...json.model };
  const tokenizer = new Tokenizer({ ...json, model, pre_tokenizer: digitsAsSplit(json.pre_tokenizer) }, CONFIG);
  if (model.type === "BPE") {
    // tokenizers.js 0.2.0 keeps what its BPE was built from, which it reads only then: the file's vocabulary and
    // merges (copied into maps of its own) and the merges split into pairs (ranked in a map of their own). Let
    // go, they are 13 MB of the 36 MB a 152k vocabulary with 49k merges takes (Node's heap, here).
    model.vocab = model.merges = undefined;
    tokenizer.model.merges = undefined;
  }
  return tokenizer;
}

const encodeWith = (tokenizer, text) => Int32Array.from(tokenizer.encode(text, { add_special_tokens: false }).ids);
