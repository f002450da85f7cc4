import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { ChatTemplate } from "../src/engine/prompt.js";
import { BundleError } from "../src/engine/errors.js";

// SmolLM2-135M-Instruct's chat template, as the bundle's tokenizer_config.json carries it
const SMOLLM2 = {
  chat_template: "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}",
  bos_token: "<|im_start|>", eos_token: "<|im_end|>",
};

test("SmolLM2: the default system prompt is added when none is given (the reference prompt text)", () => {
  assert.equal(new ChatTemplate(SMOLLM2).render([{ role: "user", content: "What is the capital of France?" }]),
    "<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n"
    + "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n");
});

test("multi-turn with a system message; a new turn extends the previous prompt (KV reuse)", () => {
  const template = new ChatTemplate(SMOLLM2);
  const turn1 = [{ role: "system", content: "Be brief." }, { role: "user", content: "Hi" }];
  const first = template.render(turn1);
  assert.equal(first, "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n");
  const second = template.render([...turn1, { role: "assistant", content: "Hello!" }, { role: "user", content: "Bye" }]);
  assert.ok(second.startsWith(`${first}Hello!<|im_end|>\n`));
});

test("special tokens given as {content} objects, and a missing template", () => {
  const template = new ChatTemplate({ chat_template: "{{ bos_token }}{{ messages[0].content }}{{ eos_token }}",
    bos_token: { content: "<s>" }, eos_token: "</s>" });
  assert.equal(template.render([{ role: "user", content: "x" }]), "<s>x</s>");
  assert.throws(() => new ChatTemplate({}), (e) => e instanceof BundleError && e.code === "bundle_invalid");
});

test("a Gemma-style turn template (BOS, system folded into the first turn, slices, filters) renders as "
  + "transformers' apply_chat_template", () => {
  const recorded = JSON.parse(readFileSync(new URL("../../tests/fixtures/gemma3_270m_tokenizer.json", import.meta.url),
    "utf8"));
  const template = new ChatTemplate({ chat_template: recorded.chat_template, bos_token: "<bos>", eos_token: "<eos>" });
  for (const chat of recorded.chats) assert.equal(template.render(chat.messages), chat.prompt);
});
