// Streaming detokenization that never emits a broken UTF-8 character. Byte-level BPE tokens can end in the
// middle of a multi-byte character; the tokenizer then decodes the dangling bytes as U+FFFD. So text is only
// emitted once the decoded window no longer ends in U+FFFD. The window (as in Hugging Face's text-generation-
// inference) starts at the tokens emitted last, so decoding stays O(1) per token and tokenizers whose decoding
// depends on the preceding token (leading spaces) still produce the right text.
const REPLACEMENT = "\uFFFD";

export class StreamingDetokenizer {
  /** @param {(ids: number[]) => string} decode the tokenizer's decode of a list of ids */
  constructor(decode) {
    this.decode = decode;
    /** @type {number[]} */ this.ids = [];
    this.prefixOffset = 0; // window start: the tokens before `readOffset` whose text was already emitted
    this.readOffset = 0;
  }

  /** The new text that `id` completes ("" while a character is still incomplete). @param {number} id */
  push(id) {
    this.ids.push(id);
    const emitted = this.decode(this.ids.slice(this.prefixOffset, this.readOffset));
    const text = this.decode(this.ids.slice(this.prefixOffset));
    if (text.length <= emitted.length || text.endsWith(REPLACEMENT)) return "";
    this.prefixOffset = this.readOffset;
    this.readOffset = this.ids.length;
    return text.slice(emitted.length);
  }

  /** At the end of generation: the text still held back, without the bytes of an unfinished character. */
  flush() {
    const emitted = this.decode(this.ids.slice(this.prefixOffset, this.readOffset));
    const text = this.decode(this.ids.slice(this.prefixOffset));
    this.prefixOffset = this.readOffset = this.ids.length;
    let end = text.length;
    while (end > emitted.length && text[end - 1] === REPLACEMENT) end--;
    return text.slice(emitted.length, end);
  }
}
