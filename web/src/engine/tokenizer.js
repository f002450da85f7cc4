// @mlc-ai/web-tokenizers 0.1.6 ships a UMD file in a "type": "module" package: bundled as ESM it exports
// nothing and, as a side effect, defines globalThis.tokenizers. This module turns that into a named export.
import "@mlc-ai/web-tokenizers";

/** @type {typeof import("@mlc-ai/web-tokenizers").Tokenizer} */
export const Tokenizer = /** @type {any} */ (globalThis).tokenizers.Tokenizer;
