// The engine's BundleTokenizer on one tokenizer.json, for tests/test_engine_tokenizer.py (which compares it with
// the Rust `tokenizers` library): stdin {tokenizer, texts, decode, stream, vocabSize, postprocessing}; stdout, per text
// its ids and its ids as plain text (special tokens spelled out are text), per id list of `decode` its text and of
// `stream` the text streamed token by token (as an answer is), and the token table.
import { BundleTokenizer } from "../src/engine/bundle-tokenizer.js";
import { StreamingDetokenizer } from "../src/engine/detokenizer.js";

const chunks = [];
for await (const chunk of process.stdin) chunks.push(chunk);
const job = JSON.parse(Buffer.concat(chunks).toString("utf8"));
const tokenizer = await BundleTokenizer.load(async () => structuredClone(job.tokenizer),
  { vocab_size: job.vocabSize, tokenizer_info: { token_postproc_method: job.postprocessing } });
const plain = await tokenizer.plain();
const table = tokenizer.tokenTable();
process.stdout.write(JSON.stringify({
  ids: job.texts.map((text) => Array.from(tokenizer.encode(text))),
  plainIds: job.texts.map((text) => Array.from(plain.encode(text))),
  decoded: job.decode.map((ids) => tokenizer.decode(Int32Array.from(ids))),
  streamed: job.stream.map((ids) => {
    const detokenizer = new StreamingDetokenizer((window) => tokenizer.decode(window));
    return ids.map((id) => detokenizer.push(id)).join("") + detokenizer.flush();
  }),
  tokens: table.tokens,
  special: [...table.special],
}));
