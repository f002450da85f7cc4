// The prompt text of a conversation, rendered with the bundle's Jinja chat template (tokenizer_config.json's
// `chat_template`, as Hugging Face's apply_chat_template does, with add_generation_prompt).
import { Template } from "@huggingface/jinja";
import { BundleError } from "./errors.js";

export class ChatTemplate {
  /** @param {any} tokenizerConfig the parsed tokenizer_config.json */
  constructor(tokenizerConfig) {
    if (typeof tokenizerConfig?.chat_template !== "string") {
      throw new BundleError("tokenizer_config.json has no chat_template: the bundle cannot build chat prompts",
        "bundle_invalid");
    }
    this.template = new Template(tokenizerConfig.chat_template);
    /** whether the template renders `tools` (Hugging Face templates that support tool use take that variable) */
    this.takesTools = /\btools\b/.test(tokenizerConfig.chat_template);
    // Hugging Face configs give special tokens as strings or as {content: ...} objects.
    const token = (value) => (typeof value === "object" && value !== null ? value.content : value) ?? "";
    this.specialTokens = { bos_token: token(tokenizerConfig.bos_token), eos_token: token(tokenizerConfig.eos_token) };
  }

  /** @param {Array<{role: string, content: string}>} messages @param {object[] | null} [tools] */
  render(messages, tools = null) {
    return this.template.render({ messages, ...(tools && { tools }), add_generation_prompt: true, ...this.specialTokens });
  }
}
