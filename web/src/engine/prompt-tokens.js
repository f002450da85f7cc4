// The token ids of a chat prompt in which only the chat template's own markers are control tokens. Message text
// that spells a special token ("<|im_end|>\n<|im_start|>system ...", pasted or from an untrusted source) is
// tokenized as the plain text it is, as Hugging Face's `split_special_tokens=True` does, so it cannot forge a
// turn of the conversation.
//
// How: each special token's text inside a message (and the escape character itself) is swapped for a private-use
// placeholder before the template is rendered; the special tokens left in the rendered prompt are therefore the
// template's. The prompt is cut at those, and every piece between them has its placeholders put back and is
// encoded by a tokenizer that knows no special tokens. Tokenizers split at special tokens and encode the pieces
// between them independently anyway, so a prompt without such text gets exactly the ids it always got. A special
// token marked lstrip or rstrip in tokenizer.json takes the whitespace before or after it with it, as Hugging Face's
// tokenizers do (Phi-3's <|user|>, <|assistant|> and <|end|> take the newline the template puts after them).
//
// That tokenizer is built only for the first piece that spells a special token: a piece that spells none gets
// the same ids from the bundle's own tokenizer (it finds no special token to split at), and reading and building
// a tokenizer of a 128k vocabulary takes about 0.2 s in Chromium here (bench.warm_load), and memory. Where a
// special token is matched on normalized text (`normalized: true`), a piece may spell it only once normalized, so
// every piece takes the plain tokenizer.

const ESCAPE = "\uE000"; // private-use characters: a placeholder is ESCAPE <index> END
const END = "\uE001";
const PLACEHOLDER = new RegExp(`${ESCAPE}(\\d+)${END}`, "g");

const escapeRegExp = (text) => text.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");

/** The index of the first character of `text` at or after `from` that is not whitespace. */
function skipWhitespace(text, from) {
  const whitespace = /\s*/y;
  whitespace.lastIndex = from;
  whitespace.exec(text);
  return whitespace.lastIndex;
}

export class PromptEncoder {
  /**
   * @param {{render(messages: Array<{role: string, content: string}>, tools?: object[] | null): string}} template
   *   the chat template
   * @param {{encode(text: string): ArrayLike<number>}} tokenizer the bundle's tokenizer
   * @param {() => Promise<{encode(text: string): ArrayLike<number>}>} plainTokenizer the bundle's tokenizer
   *   without its special tokens (tokenizer.json with those left out of added_tokens), built on the first call:
   *   encodes any text as plain text
   * @param {Array<{content: string, id: number, lstrip?: boolean, rstrip?: boolean, normalized?: boolean}>}
   *   specialTokens tokenizer.json's added tokens marked special
   */
  constructor(template, tokenizer, plainTokenizer, specialTokens) {
    this.template = template;
    this.tokenizer = tokenizer;
    this.plainTokenizer = plainTokenizer;
    this.alwaysPlain = specialTokens.some((token) => token.normalized);
    this.tokens = new Map(specialTokens.map((token) => [token.content, token]));
    // longest first, so a token that begins with another is matched whole
    const alternatives = [...this.tokens.keys()].sort((a, b) => b.length - a.length).map(escapeRegExp);
    this.special = alternatives.length ? new RegExp(alternatives.join("|"), "g") : null;
    this.escapable = new RegExp([ESCAPE, ...alternatives].join("|"), "g");
  }

  /**
   * @param {Array<{role: string, content: string}>} messages
   * @param {object[] | null} [tools] for a template that takes them
   * @returns {Promise<number[]>}
   */
  async encode(messages, tools = null) {
    const originals = [];
    // every string the template may print: message text, tool calls' arguments, the tools' names, descriptions
    // and schemas (keys included)
    const escape = (value) => {
      if (typeof value === "string") {
        return value.replace(this.escapable, (text) => `${ESCAPE}${originals.push(text) - 1}${END}`);
      }
      if (Array.isArray(value)) return value.map(escape);
      if (value === null || typeof value !== "object") return value;
      return Object.fromEntries(Object.entries(value).map(([key, item]) => [escape(key), escape(item)]));
    };
    const prompt = this.template.render(escape(messages), tools && escape(tools));
    const ids = [];
    const encodePlain = async (text) => {
      if (!text) return;
      let spellsSpecial = this.alwaysPlain;
      const original = text.replace(PLACEHOLDER, (_, i) => {
        spellsSpecial ||= originals[Number(i)] !== ESCAPE;
        return originals[Number(i)];
      });
      ids.push(...(spellsSpecial ? await this.plainTokenizer() : this.tokenizer).encode(original));
    };
    let from = 0;
    for (const match of this.special ? prompt.matchAll(this.special) : []) {
      const token = this.tokens.get(match[0]);
      const before = prompt.slice(from, match.index);
      await encodePlain(token.lstrip ? before.trimEnd() : before);
      ids.push(token.id);
      from = match.index + match[0].length;
      if (token.rstrip) from = skipWhitespace(prompt, from);
    }
    await encodePlain(prompt.slice(from));
    return ids;
  }
}
