// Validation of chat.completions.create() requests: every check names the offending parameter (OpenAI's
// `param`), and the result is a normalized request the worker can trust. Runs on the page, before anything is
// sent to the worker, so argument errors are thrown at once and a bad request never starts a generation.
import { InvalidRequestError } from "./errors.js";
import { validateTools } from "./tools.js";

const ROLES = new Set(["system", "user", "assistant", "tool"]);
const MAX_STOP_STRINGS = 4; // as OpenAI
const KNOWN = new Set([
  "messages", "model", "max_tokens", "max_completion_tokens", "temperature", "top_p", "seed", "stop",
  "frequency_penalty", "presence_penalty", "logit_bias", "n", "logprobs", "top_logprobs", "response_format",
  "tools", "tool_choice", "stream", "stream_options", "signal",
]);
const MAX_CHOICES = 128; // as OpenAI
const MAX_TOP_LOGPROBS = 20; // as OpenAI

/**
 * @typedef {{role: "system" | "user" | "assistant" | "tool", content: string,
 *            toolCalls?: import("./tools.js").ToolCall[], toolCallId?: string}} ChatMessage  toolCalls: an assistant's
 *   calls; toolCallId: the call a tool message answers
 * @typedef {{
 *   messages: ChatMessage[] | null, prompt?: string, maxTokens: number | null, temperature: number,
 *   topP: number, seed: number | null, stop: string[], frequencyPenalty: number, presencePenalty: number,
 *   logitBias: Array<[number, number]>,
 *   n: number, topLogprobs: number | null, responseFormat: ResponseFormat | null,
 *   tools: import("./tools.js").Tools | null, stream: boolean,
 *   includeUsage: boolean,
 * }} NormalizedRequest  topLogprobs: null without logprobs, else how many alternatives to list per token (0-20);
 *   a chat has messages, a (legacy) completion a prompt instead
 * @typedef {{type: "json_object"} | {type: "json_schema", name: string, schema: string}} ResponseFormat  output
 *   constrained to any JSON object, or to JSON that validates against `schema` (JSON text)
 * @typedef {{vocabSize: number, temperature: number, topP: number}} ModelLimits  the loaded model's vocabulary
 *   size and its default sampling parameters (from mlc-chat-config.json), used where the request gives none
 */

/**
 * @param {any} request an OpenAI ChatCompletionCreateParams object (plus `signal`)
 * @param {ModelLimits} model
 * @returns {NormalizedRequest}
 */
export function validateChatRequest(request, model) {
  if (request === null || typeof request !== "object" || Array.isArray(request)) {
    throw new InvalidRequestError("The request must be an object", null);
  }
  for (const key of Object.keys(request)) {
    if (!KNOWN.has(key)) throw new InvalidRequestError(`Unsupported parameter: '${key}'`, key, "unsupported_parameter");
  }
  const given = (key) => request[key] !== undefined && request[key] !== null;
  const logprobs = given("logprobs") ? boolean(request.logprobs, "logprobs") : false;
  if (given("top_logprobs") && !logprobs) {
    throw new InvalidRequestError("top_logprobs needs logprobs: true", "top_logprobs");
  }
  if (given("model") && typeof request.model !== "string") throw new InvalidRequestError("model must be a string", "model");
  if (given("max_tokens") && given("max_completion_tokens") && request.max_tokens !== request.max_completion_tokens) {
    throw new InvalidRequestError("Give max_completion_tokens or max_tokens (deprecated), not two different values",
      "max_completion_tokens");
  }
  const maxTokensKey = given("max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
  const stream = given("stream") ? boolean(request.stream, "stream") : false;
  if (given("signal")) abortSignal(request.signal);
  const tools = validateTools(request.tools, request.tool_choice);
  if (tools && given("response_format") && request.response_format?.type !== "text") {
    throw new InvalidRequestError("response_format cannot be combined with tools (unless tool_choice is \"none\")",
      "response_format");
  }
  if (given("stream_options") && !stream) {
    throw new InvalidRequestError("stream_options is only allowed when stream is true", "stream_options");
  }
  return {
    messages: validateMessages(request.messages),
    maxTokens: given(maxTokensKey) ? integer(request[maxTokensKey], maxTokensKey, 1) : null,
    temperature: given("temperature") ? number(request.temperature, "temperature", 0, 2) : model.temperature,
    topP: given("top_p") ? number(request.top_p, "top_p", 0, 1) : model.topP,
    seed: given("seed") ? integer(request.seed, "seed", Number.MIN_SAFE_INTEGER) : null,
    stop: given("stop") ? stopStrings(request.stop) : [],
    frequencyPenalty: given("frequency_penalty") ? number(request.frequency_penalty, "frequency_penalty", -2, 2) : 0,
    presencePenalty: given("presence_penalty") ? number(request.presence_penalty, "presence_penalty", -2, 2) : 0,
    logitBias: given("logit_bias") ? logitBias(request.logit_bias, model.vocabSize) : [],
    n: given("n") ? integerIn(request.n, "n", 1, MAX_CHOICES) : 1,
    topLogprobs: logprobs ? (given("top_logprobs") ? integerIn(request.top_logprobs, "top_logprobs", 0, MAX_TOP_LOGPROBS) : 0)
      : null,
    responseFormat: given("response_format") ? responseFormat(request.response_format) : null,
    tools,
    stream,
    includeUsage: given("stream_options") ? includeUsage(request.stream_options) : false,
  };
}

const COMPLETION_KNOWN = new Set([
  "prompt", "model", "max_tokens", "temperature", "top_p", "seed", "stop", "stream", "stream_options", "signal",
]);
const COMPLETION_MAX_TOKENS = 16; // OpenAI's default for legacy completions

/**
 * OpenAI's legacy completions.create() request (a base model's prompt continued): the same NormalizedRequest as a
 * chat's, with `prompt` instead of messages and the chat-only features off.
 * @param {any} request an OpenAI CompletionCreateParams object (plus `signal`), prompt a string
 * @param {ModelLimits} model
 * @returns {NormalizedRequest}
 */
export function validateCompletionRequest(request, model) {
  if (request === null || typeof request !== "object" || Array.isArray(request)) {
    throw new InvalidRequestError("The request must be an object", null);
  }
  for (const key of Object.keys(request)) {
    if (!COMPLETION_KNOWN.has(key)) {
      throw new InvalidRequestError(`Unsupported parameter: '${key}'`, key, "unsupported_parameter");
    }
  }
  const { prompt, ...rest } = request;
  if (typeof prompt !== "string" || prompt === "") {
    throw new InvalidRequestError("prompt must be a non-empty string", "prompt",
      prompt === undefined ? "missing_required_parameter" : "invalid_value");
  }
  const chat = validateChatRequest({ ...rest, messages: [{ role: "user", content: prompt }] }, model);
  return { ...chat, messages: null, prompt, maxTokens: chat.maxTokens ?? COMPLETION_MAX_TOKENS };
}

/** @returns {ChatMessage[]} */
export function validateMessages(value) {
  if (!Array.isArray(value) || value.length === 0) {
    throw new InvalidRequestError("messages must be a non-empty array of {role, content}", "messages",
      value === undefined ? "missing_required_parameter" : "invalid_value");
  }
  const callIds = new Set();
  return value.map((message, i) => {
    const where = `messages[${i}]`;
    if (message === null || typeof message !== "object") throw new InvalidRequestError(`${where} must be an object`, where);
    if (!ROLES.has(message.role)) {
      throw new InvalidRequestError(`${where}.role must be one of ${[...ROLES].join(", ")} (got ${
        JSON.stringify(message.role)})`, `${where}.role`);
    }
    const { role } = message;
    if (role === "assistant" && message.tool_calls !== undefined && message.tool_calls !== null) {
      const toolCalls = assistantToolCalls(message.tool_calls, `${where}.tool_calls`);
      for (const call of toolCalls) callIds.add(call.id);
      const content = message.content === null || message.content === undefined ? ""
        : messageText(message.content, `${where}.content`);
      return { role, content, toolCalls };
    }
    const content = messageText(message.content, `${where}.content`);
    if (role !== "tool") return { role, content };
    if (!callIds.has(message.tool_call_id)) {
      throw new InvalidRequestError(`${where}.tool_call_id must be the id of a tool call of an earlier assistant message`,
        `${where}.tool_call_id`);
    }
    return { role, content, toolCallId: message.tool_call_id };
  });
}

/** An assistant message's tool_calls: [{id, type: "function", function: {name, arguments (JSON text of an object)}}]. */
function assistantToolCalls(value, where) {
  if (!Array.isArray(value) || value.length === 0) {
    throw new InvalidRequestError(`${where} must be a non-empty list of tool calls`, where);
  }
  return value.map((call, j) => {
    const at = `${where}[${j}]`;
    const fn = call?.function;
    if (typeof call?.id !== "string" || call.id === "" || call.type !== "function" || typeof fn?.name !== "string"
        || typeof fn.arguments !== "string") {
      throw new InvalidRequestError(`${at} must be {id, type: "function", function: {name, arguments}}`, at);
    }
    let parsed;
    try {
      parsed = JSON.parse(fn.arguments);
    } catch {
      parsed = null;
    }
    if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed)) {
      throw new InvalidRequestError(`${at}.function.arguments must be a JSON object's text`, `${at}.function.arguments`);
    }
    return { id: call.id, name: fn.name, arguments: fn.arguments };
  });
}

/** A string, or OpenAI content parts of type "text" (joined): the model reads text only. */
function messageText(content, where) {
  if (typeof content === "string") return content;
  if (Array.isArray(content)) {
    return content.map((part, j) => {
      if (part?.type !== "text" || typeof part.text !== "string") {
        throw new InvalidRequestError(`${where}[${j}] must be a {type: "text", text} part: this model reads text only`,
          `${where}[${j}]`);
      }
      return part.text;
    }).join("");
  }
  throw new InvalidRequestError(`${where} must be a string or an array of text parts`, where);
}

/** An AbortSignal (or an object with its shape). Passing the AbortController itself instead of its `.signal` is a
 * common mistake: caught here, before the worker starts a generation that nothing could stop. */
function abortSignal(value) {
  const shaped = typeof value === "object" && typeof value.aborted === "boolean"
    && typeof value.addEventListener === "function" && typeof value.removeEventListener === "function";
  if (!shaped) {
    throw new InvalidRequestError("signal must be an AbortSignal (an AbortController's .signal, not the controller)",
      "signal");
  }
}

function stopStrings(value) {
  const list = typeof value === "string" ? [value] : value;
  if (!Array.isArray(list) || list.length > MAX_STOP_STRINGS || list.some((s) => typeof s !== "string" || s === "")) {
    throw new InvalidRequestError(`stop must be a non-empty string or a list of at most ${MAX_STOP_STRINGS} of them`, "stop");
  }
  return list;
}

/** @returns {Array<[number, number]>} (token id, bias) pairs */
function logitBias(value, vocabSize) {
  if (typeof value !== "object" || Array.isArray(value)) {
    throw new InvalidRequestError("logit_bias must be an object mapping token ids to biases", "logit_bias");
  }
  return Object.entries(value).map(([key, bias]) => {
    const id = Number(key);
    if (!/^\d+$/.test(key) || id >= vocabSize) {
      throw new InvalidRequestError(`logit_bias: ${JSON.stringify(key)} is not a token id (0..${vocabSize - 1})`, "logit_bias");
    }
    return [id, number(bias, `logit_bias.${key}`, -100, 100)];
  });
}

/** OpenAI's response_format: {type: "text"} (no constraint), {type: "json_object"}, or {type: "json_schema",
 * json_schema: {name, schema, strict, description}}. Whether the schema compiles is known only in the worker. */
function responseFormat(value) {
  const param = "response_format";
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    throw new InvalidRequestError("response_format must be an object {type, ...}", param);
  }
  if (value.type === "text") return null;
  if (value.type === "json_object") return { type: "json_object" };
  if (value.type !== "json_schema") {
    throw new InvalidRequestError(`response_format.type must be one of text, json_object, json_schema (got ${
      JSON.stringify(value.type)})`, `${param}.type`);
  }
  const format = value.json_schema;
  if (format === null || typeof format !== "object" || Array.isArray(format)) {
    throw new InvalidRequestError("response_format.json_schema must be an object {name, schema, strict}",
      `${param}.json_schema`, format === undefined ? "missing_required_parameter" : "invalid_value");
  }
  if (typeof format.name !== "string" || !/^[A-Za-z0-9_-]{1,64}$/.test(format.name)) {
    throw new InvalidRequestError("response_format.json_schema.name must be 1-64 letters, digits, _ or -",
      `${param}.json_schema.name`);
  }
  if (format.strict !== undefined && format.strict !== null) boolean(format.strict, `${param}.json_schema.strict`);
  const schema = format.schema ?? {};
  if (typeof schema !== "object" || Array.isArray(schema)) {
    throw new InvalidRequestError("response_format.json_schema.schema must be a JSON schema (an object)",
      `${param}.json_schema.schema`);
  }
  return { type: "json_schema", name: format.name, schema: JSON.stringify(schema) };
}

function includeUsage(value) {
  if (typeof value !== "object" || Array.isArray(value)) {
    throw new InvalidRequestError("stream_options must be an object", "stream_options");
  }
  for (const key of Object.keys(value)) {
    if (key !== "include_usage") {
      throw new InvalidRequestError(`Unsupported parameter: 'stream_options.${key}'`, `stream_options.${key}`,
        "unsupported_parameter");
    }
  }
  return value.include_usage === undefined ? false : boolean(value.include_usage, "stream_options.include_usage");
}

function number(value, param, min, max) {
  if (typeof value !== "number" || !Number.isFinite(value) || value < min || value > max) {
    throw new InvalidRequestError(`${param} must be a number from ${min} to ${max} (got ${JSON.stringify(value)})`, param);
  }
  return value;
}

function integer(value, param, min) {
  if (!Number.isSafeInteger(value) || value < min) {
    const range = min === Number.MIN_SAFE_INTEGER ? "a (safe) integer" : `an integer >= ${min}`;
    throw new InvalidRequestError(`${param} must be ${range} (got ${JSON.stringify(value)})`, param);
  }
  return value;
}

function integerIn(value, param, min, max) {
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new InvalidRequestError(`${param} must be an integer from ${min} to ${max} (got ${JSON.stringify(value)})`, param);
  }
  return value;
}

function boolean(value, param) {
  if (typeof value !== "boolean") throw new InvalidRequestError(`${param} must be true or false`, param);
  return value;
}
