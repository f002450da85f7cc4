// OpenAI's function calling: `tools` and `tool_choice`, tool calls in the history (assistant `tool_calls`, role
// "tool" results), and the model's tool calls read back from its output.
//
// The prompt: a chat template that takes `tools` (Hugging Face templates that support tool use name the variable)
// gets them, and the history in Hugging Face's shape. One that does not (SmolLM2's ChatML) gets the documented
// fallback: a system message that lists the functions' schemas and asks for a call as one JSON object
// {"name": ..., "arguments": {...}}; past calls are written back in that form and tool results become user messages.
// The output: either way, a call is {"name": "<function>", "arguments": <JSON>}, kept to that shape and to the
// function's parameters schema by a grammar (an XGrammar structural tag: with tool_choice "auto" the model may write
// text, and a call once it starts one; "required" or a named function make the output one call).
import { InvalidRequestError } from "./errors.js";

/**
 * @typedef {{name: string, description: string, parameters: object}} FunctionTool
 * @typedef {"auto" | "required" | {name: string}} ToolChoice  "none" is no tools at all (see validateTools)
 * @typedef {{functions: FunctionTool[], choice: ToolChoice}} Tools
 * @typedef {{id: string, name: string, arguments: string}} ToolCall  arguments: JSON text, as OpenAI gives it
 */

const NAME = /^[A-Za-z0-9_-]{1,64}$/;
const MAX_TOOLS = 128; // as OpenAI
/** Follows a tool's result in the fallback: without it SmolLM2-135M only repeats its call. */
const ANSWER_WITH_RESULT = "Use this result to answer my question in plain text.";
/** What starts a call in the output. */
const CALL_START = '{"name": ';

/**
 * OpenAI's `tools` and `tool_choice`, checked. Without tools, or with tool_choice "none", the model is told of no
 * tools and writes text (null).
 * @returns {Tools | null}
 */
export function validateTools(tools, toolChoice) {
  if (tools === undefined || tools === null) {
    if (toolChoice !== undefined && toolChoice !== null && toolChoice !== "none") {
      throw new InvalidRequestError("tool_choice needs tools", "tool_choice");
    }
    return null;
  }
  if (!Array.isArray(tools) || tools.length === 0 || tools.length > MAX_TOOLS) {
    throw new InvalidRequestError(`tools must be a list of 1 to ${MAX_TOOLS} {type: "function", function} objects`,
      "tools");
  }
  const functions = tools.map((tool, i) => {
    const where = `tools[${i}]`;
    if (tool?.type !== "function" || tool.function === null || typeof tool.function !== "object") {
      throw new InvalidRequestError(`${where} must be {type: "function", function: {name, description, parameters}}`,
        where);
    }
    const { name, description = "", parameters = { type: "object", properties: {} } } = tool.function;
    if (typeof name !== "string" || !NAME.test(name)) {
      throw new InvalidRequestError(`${where}.function.name must be 1-64 letters, digits, _ or -`, `${where}.function.name`);
    }
    if (typeof description !== "string") {
      throw new InvalidRequestError(`${where}.function.description must be a string`, `${where}.function.description`);
    }
    if (parameters === null || typeof parameters !== "object" || Array.isArray(parameters)) {
      throw new InvalidRequestError(`${where}.function.parameters must be a JSON schema (an object)`,
        `${where}.function.parameters`);
    }
    return { name, description, parameters };
  });
  const names = functions.map((f) => f.name);
  const repeated = names.find((name, i) => names.indexOf(name) !== i);
  if (repeated) throw new InvalidRequestError(`tools: two functions are named ${repeated}`, "tools");
  const choice = toolChoice ?? "auto";
  if (choice === "none") return null;
  if (choice === "auto" || choice === "required") return { functions, choice };
  if (choice?.type === "function" && names.includes(choice.function?.name)) {
    return { functions, choice: { name: choice.function.name } };
  }
  throw new InvalidRequestError(`tool_choice must be "none", "auto", "required" or {type: "function", function: `
    + `{name}} naming one of the tools (${names.join(", ")})`, "tool_choice");
}

/**
 * The XGrammar structural tag that keeps the output to text and calls ("auto"), or to one call.
 * @param {Tools} tools
 */
export function toolCallGrammar({ functions, choice }) {
  const callable = typeof choice === "object" ? functions.filter((f) => f.name === choice.name) : functions;
  return {
    type: "structural_tag",
    format: {
      type: "triggered_tags",
      triggers: [CALL_START],
      tags: callable.map((f) => ({
        type: "tag", begin: `${CALL_START}${JSON.stringify(f.name)}, "arguments": `,
        content: { type: "json_schema", json_schema: f.parameters }, end: "}",
      })),
      at_least_one: choice !== "auto",
      stop_after_first: true,
    },
  };
}

/**
 * The text before a call, and the call, in what the model wrote.
 * @param {string} text
 * @param {FunctionTool[]} functions
 * @returns {{content: string, calls: Array<{name: string, arguments: string}>}}
 */
export function parseToolCalls(text, functions) {
  for (let start = text.indexOf(CALL_START); start !== -1; start = text.indexOf(CALL_START, start + 1)) {
    const call = jsonObjectAt(text, start);
    if (call && functions.some((f) => f.name === call.name) && typeof call.arguments === "object") {
      return { content: text.slice(0, start), calls: [{ name: call.name, arguments: JSON.stringify(call.arguments) }] };
    }
  }
  return { content: text, calls: [] };
}

/**
 * One choice's output as it is generated, when it may hold a call: the text that cannot be part of a call is
 * released at once (so an answer in words streams as usual); from where a call may start, it is held until the
 * choice ends, when finish() reads the call.
 */
export class ToolCallStream {
  /** @param {FunctionTool[]} functions */
  constructor(functions) {
    this.functions = functions;
    this.text = "";
    this.released = 0; // how much of text was released
  }

  /** Adds generated text; returns the part that is now known to come before any call. @param {string} text */
  push(text) {
    this.text += text;
    const start = this.text.indexOf(CALL_START);
    const safe = start !== -1 ? start : this.text.length - partialStart(this.text);
    if (safe <= this.released) return "";
    const out = this.text.slice(this.released, safe);
    this.released = safe;
    return out;
  }

  /** At the end of the choice: the text not released yet before the call, and the call (if any). */
  finish() {
    const { content, calls } = parseToolCalls(this.text, this.functions);
    return { content: content.slice(this.released), calls };
  }
}

/** Length of the longest end of `text` that is a proper start of CALL_START. */
function partialStart(text) {
  for (let n = Math.min(CALL_START.length - 1, text.length); n > 0; n--) {
    if (text.endsWith(CALL_START.slice(0, n))) return n;
  }
  return 0;
}

/** The JSON object that starts at `start` in `text` (the shortest that parses), or null. */
function jsonObjectAt(text, start) {
  for (let end = text.indexOf("}", start); end !== -1; end = text.indexOf("}", end + 1)) {
    try {
      return JSON.parse(text.slice(start, end + 1));
    } catch {
      // not yet the end of the object
    }
  }
  return null;
}

/**
 * The messages (and tools) the chat template renders. A template that takes tools gets the history in Hugging
 * Face's shape (arguments as objects); one that does not gets the fallback described at the top.
 * @param {import("./request.js").ChatMessage[]} messages
 * @param {Tools | null} tools
 * @param {boolean} templateTakesTools
 * @returns {{messages: Array<Record<string, any>>, tools: Array<{type: "function", function: FunctionTool}> | null}}
 */
export function templateInput(messages, tools, templateTakesTools) {
  if (templateTakesTools) {
    return {
      messages: messages.map(({ role, content, toolCalls, toolCallId }) => ({
        role, content,
        ...(toolCalls && { tool_calls: toolCalls.map((c) => ({ id: c.id, type: "function",
          function: { name: c.name, arguments: JSON.parse(c.arguments) } })) }),
        ...(toolCallId && { tool_call_id: toolCallId }),
      })),
      tools: tools && tools.functions.map((f) => ({ type: "function", function: f })),
    };
  }
  const names = new Map(messages.flatMap((m) => m.toolCalls ?? []).map((c) => [c.id, c.name]));
  const history = messages.map(({ role, content, toolCalls, toolCallId }) => {
    if (role === "tool") {
      return { role: "user", content: `The function ${names.get(toolCallId)} returned: ${content}\n${ANSWER_WITH_RESULT}` };
    }
    const calls = (toolCalls ?? []).map((c) => `${CALL_START}${JSON.stringify(c.name)}, "arguments": ${c.arguments}}`);
    return { role, content: [content, ...calls].filter(Boolean).join("\n") };
  });
  if (!tools) return { messages: history, tools: null };
  const listing = tools.functions.map((f) => JSON.stringify(f)).join("\n");
  const instructions = "You can call these functions:\n"
    + `${listing}\nTo call one, reply with only a JSON object {"name": <the function's name>, "arguments": <its `
    + "arguments>}. When a function's result is given, use it to answer.";
  const [first, ...rest] = history;
  return {
    messages: first.role === "system"
      ? [{ role: "system", content: `${first.content}\n\n${instructions}` }, ...rest]
      : [{ role: "system", content: instructions }, ...history],
    tools: null,
  };
}
