// Structured output (response_format): XGrammar (npm @mlc-ai/web-xgrammar, WebAssembly) compiles a JSON schema,
// or its built-in JSON grammar, against the bundle's token table; during decoding its matcher gives, per step, a
// bitmask of the tokens that keep the output inside the grammar, and the tokens outside it get -Infinity before
// the sampler (a LogitsProcessor of generation.js). Once the JSON is complete only the stop tokens are allowed.
import "@mlc-ai/web-xgrammar";
import { InternalEngineError, InvalidRequestError } from "./errors.js";

// The package is a UMD file in a "type": "module" package: bundled as ESM it exports nothing and defines
// globalThis.xgrammar.
const xgrammar = /** @type {any} */ (globalThis).xgrammar;

/** Compiles grammars for one bundle's tokenizer (its TokenizerInfo is built once, on first use: ~0.1 s). */
export class GrammarCompiler {
  /**
   * @param {import("./token-table.js").TokenTable} tokenTable
   * @param {number[]} stopTokenIds the tokens that end the output once the grammar is complete
   */
  static async create(tokenTable, stopTokenIds) {
    const info = await xgrammar.TokenizerInfo.createTokenizerInfo(tokenTable.tokens, tokenTable.postprocessing,
      false, tokenTable.tokens.length, stopTokenIds);
    try {
      return new GrammarCompiler(info, await xgrammar.GrammarCompiler.createGrammarCompiler(info, true));
    } catch (error) {
      info.dispose();
      throw error;
    }
  }

  constructor(info, compiler) {
    this.info = info;
    this.compiler = compiler;
  }

  /**
   * A LogitsProcessor that keeps the output inside `grammar`: a response_format, or the structural tag of tool
   * calls (tools.js). A schema XGrammar cannot compile is an InvalidRequestError naming
   * response_format.json_schema.schema, or tools (XGrammar aborts without saying why in its error; the reason goes
   * to the worker's console).
   * @param {import("./request.js").ResponseFormat | {type: "structural_tag", format: object}} grammar
   * @returns {Promise<GrammarConstraint>}
   */
  async constraint(grammar) {
    let compiled;
    try {
      // json_object: any JSON object. Whitespace is XGrammar's fixed layout (2-space indent), never free: a small
      // model can emit newlines forever. Strict: no properties or items beyond the schema's.
      compiled = grammar.type === "structural_tag" ? await this.compiler.compileStructuralTag(grammar)
        : await this.compiler.compileJSONSchema(grammar.type === "json_object" ? '{"type": "object"}' : grammar.schema,
          false);
    } catch (error) {
      const [param, what] = grammar.type === "structural_tag" ? ["tools", "A function's parameters"]
        : ["response_format.json_schema.schema", "response_format.json_schema.schema"];
      throw new InvalidRequestError(`${what} is not a JSON schema this engine can compile (XGrammar: `
        + `${error?.message ?? error}): supported are the JSON Schema keywords of OpenAI's structured outputs `
        + "(type, properties, required, items, enum, const, anyOf, $ref/$defs, ...)", param);
    }
    try {
      return new GrammarConstraint(await xgrammar.GrammarMatcher.createGrammarMatcher(compiled));
    } finally {
      compiled.dispose();
    }
  }

  dispose() {
    this.compiler.dispose();
    this.info.dispose();
  }
}

/** @implements {import("./generation.js").LogitsProcessor} */
export class GrammarConstraint {
  constructor(matcher) {
    this.matcher = matcher;
  }

  reset() {
    this.matcher.reset();
  }

  /** Tokens the grammar forbids now get -Infinity (bit j of word i set: token 32 i + j allowed). */
  async processLogits(logits) {
    const mask = await this.matcher.getNextTokenBitmask();
    for (let word = 0; word < mask.length; word++) {
      const bits = mask[word];
      if (bits === -1) continue;
      const end = Math.min(32 * word + 32, logits.length);
      for (let id = 32 * word; id < end; id++) if (!(bits & (1 << (id & 31)))) logits[id] = -Infinity;
    }
  }

  acceptToken(token) {
    if (!this.matcher.acceptToken(token)) {
      throw new InternalEngineError(`the grammar rejected token ${token}, which its own bitmask allowed`);
    }
  }

  dispose() {
    this.matcher.dispose();
  }
}
