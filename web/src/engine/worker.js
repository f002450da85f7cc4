// The engine's Web Worker: owns tvmjs, the device (WebGPU or the CPU), the model and its KV cache, and the
// tokenizer. Runs one operation at a time (load, chat, unload) from a queue; aborts are seen between prefill
// chunks and decode steps (each step yields to the worker's messages: see TVMModel.forward). The messages it
// takes and sends are defined in protocol.js.
import { BundleTokenizer } from "./bundle-tokenizer.js";
import { choiceChunk, completionMeta, textChunk, toolCallChunks, usageChunk, usageOf } from "./completion.js";
import {
  ContextLengthExceededError, EngineError, ModelNotLoadedError, WebGPUUnavailableError, notAChatModel, toWire,
} from "./errors.js";
import { generate } from "./generation.js";
import { GrammarCompiler } from "./grammar.js";
import { LIBRARY_SUFFIX, hasModelLibrary, modelLibrary } from "./manifest.js";
import { openBundleStore } from "./open-store.js";
import { ChatTemplate } from "./prompt.js";
import { PromptEncoder } from "./prompt-tokens.js";
import { Op, Reply } from "./protocol.js";
import { seededRandom } from "./sampler.js";
import { hasRelaxedSimd, threadCount } from "./model-library.js";
import { ToolCallStream, templateInput, toolCallGrammar } from "./tools.js";
import { TVMModel, checkWebGPULimits, requestWebGPU } from "./tvm-model.js";


/** @type {null | {model: TVMModel, tokenizer: BundleTokenizer, prompts: PromptEncoder | null,
 *                 bosTokenId: number | null, info: any, stopTokenIds: Set<number>, stopStrings: string[],
 *                 grammars: Promise<GrammarCompiler> | null}}
 * prompts: null for a model without a chat template */
let loaded = null;
let queue = Promise.resolve();
const pendingChats = new Set(); // ids of chats queued or running
const aborted = new Set();

const post = (message) => self.postMessage(message);

self.onmessage = ({ data }) => {
  switch (data.op) {
    case Op.abort:
      if (pendingChats.has(data.target)) aborted.add(data.target);
      return;
    case Op.interrupt:
      interruptChats();
      return;
    case Op.load:
    case Op.unload:
      interruptChats(); // a running generation ends (finish_reason "abort") before the model goes away
      enqueue(data.id, () => (data.op === Op.load ? load(data) : unload()));
      return;
    case Op.chat:
      pendingChats.add(data.id);
      enqueue(data.id, () => chat(data));
      return;
    case Op.promptIds:
      enqueue(data.id, async () => (typeof data.input === "string" ? completionPromptIds(data.input)
        : promptIdsOf(data.input)));
      return;
  }
};

function interruptChats() {
  for (const id of pendingChats) aborted.add(id);
}

function enqueue(id, task) {
  queue = queue.then(async () => {
    try {
      post({ id, type: Reply.result, value: await task() });
    } catch (error) {
      if (!(error instanceof EngineError)) console.error(error); // unexpected: keep the stack for debugging
      post({ id, type: Reply.error, error: toWire(error) });
    } finally {
      pendingChats.delete(id);
      aborted.delete(id);
    }
  });
}

/**
 * Which device runs the model: "webgpu" or "wasm" when asked for; with "auto", WebGPU on a hardware adapter
 * whose limits hold the bundle's largest weight, and the CPU otherwise (no WebGPU; only a software adapter such as
 * SwiftShader, where the same CPU runs the WebAssembly SIMD library several times faster; or a GPU too small for the
 * model, `cpuBecause` says so). Returns the GPU too when it is WebGPU. Asked for WebGPU, limits too small fail here,
 * before the weights are fetched.
 * @param {"auto" | "webgpu" | "wasm"} requested @param {import("./manifest.js").Manifest} manifest
 * @param {() => Promise<object>} readTensorCache the bundle's tensor-cache.json, read only when a GPU is there
 */
async function chooseDevice(requested, manifest, readTensorCache) {
  const cpuPossible = requested !== "webgpu" && hasModelLibrary(manifest, "wasm32");
  const cpu = (cpuBecause) => ({ device: "wasm", gpu: null, cpuBecause });
  if (requested === "wasm") return cpu(null);
  let gpu;
  try {
    gpu = await requestWebGPU();
  } catch (error) {
    if (cpuPossible && error instanceof WebGPUUnavailableError) return cpu(null);
    throw error;
  }
  if (cpuPossible && gpu.adapterInfo?.isFallbackAdapter) {
    gpu.device.destroy();
    return cpu(null);
  }
  try {
    checkWebGPULimits(gpu.device, await readTensorCache(), `${manifest.model}-${manifest.quantization}`);
  } catch (error) {
    gpu.device.destroy();
    if (cpuPossible && error instanceof WebGPUUnavailableError) return cpu("the GPU's WebGPU limits are too small");
    throw error;
  }
  return { device: "webgpu", gpu, cpuBecause: null };
}

/** The kind of model library that runs on `device`: on the CPU, the relaxed-SIMD build where the browser has
 * relaxed SIMD and the bundle has it (bundles from before it have only the SIMD128 one).
 * @param {"webgpu" | "wasm"} device @param {import("./manifest.js").Manifest} manifest */
function libraryKind(device, manifest) {
  if (device === "webgpu") return "webgpu";
  return hasRelaxedSimd() && hasModelLibrary(manifest, "wasm32-relaxed") ? "wasm32-relaxed" : "wasm32";
}

/** A lost GPU device (driver reset, GPU removed, out of memory) ends this worker's usefulness: tvmjs disposes
 * itself then, so the page is told, and it replaces the worker. A device destroyed by unload() is no loss. */
function reportDeviceLoss(device) {
  device.lost.then((info) => {
    if (info.reason !== "destroyed") post({ type: Reply.deviceLost, message: info.message || "no reason given" });
  });
}

async function load({ id, bundleUrl, device: requested, threads: requestedThreads }) {
  unload();
  const started = performance.now();
  const progress = (p) => post({ id, type: Reply.progress, progress: p });
  const store = await openBundleStore(bundleUrl, progress);
  const { manifest } = store;
  let tensorCacheRead = null;
  const readTensorCache = () => (tensorCacheRead ??= store.readJson("tensor-cache.json"));
  const { device, gpu, cpuBecause } = await chooseDevice(requested, manifest, readTensorCache);
  if (gpu) reportDeviceLoss(gpu.device);
  try {
    const kind = libraryKind(device, manifest);
    for (const other of Object.keys(LIBRARY_SUFFIX)) {
      if (other !== kind && hasModelLibrary(manifest, other)) store.leaveOut(modelLibrary(manifest, other).path);
    }
    await store.checkQuota();
    const chatConfig = await store.readJson("mlc-chat-config.json");
    const tokenizerConfig = await store.readJson("tokenizer_config.json");
    // a base model has no chat template: it serves completions only
    const template = typeof tokenizerConfig.chat_template === "string" ? new ChatTemplate(tokenizerConfig) : null;
    const tokenizer = await BundleTokenizer.load(() => store.readJson("tokenizer.json"), chatConfig);
    const tensorCache = await readTensorCache();
    const library = await store.read(modelLibrary(manifest, kind).path);
    const compiling = () => progress({ stage: "compile", text: "Compiling WebGPU shaders", loadedBytes: store.loadedBytes,
      totalBytes: store.totalBytes, fraction: store.loadedBytes / store.totalBytes });
    const cpu = device === "wasm" ? threadCount(requestedThreads) : null;
    const model = await TVMModel.load(gpu, library, tensorCache, (name, sink) => store.stream(name, sink), compiling,
      cpu?.threads ?? 1);
    store.endLoad();
    const conv = chatConfig.conv_template ?? {};
    const info = {
      bundleId: manifest.bundle_id,
      model: `${manifest.model}-${manifest.quantization}`,
      quantization: manifest.quantization,
      device,
      library: kind,
      adapter: gpu ? { vendor: gpu.adapterInfo?.vendor ?? "", architecture: gpu.adapterInfo?.architecture ?? "" } : null,
      threads: cpu?.threads ?? null,
      threadsLimitedBy: cpu?.limitedBy ?? null,
      cpuBecause,
      contextWindowSize: model.contextWindowSize,
      chatTemplate: template !== null,
      vocabSize: chatConfig.vocab_size,
      temperature: chatConfig.temperature ?? 1,
      topP: chatConfig.top_p ?? 1,
      loadTimeS: (performance.now() - started) / 1000,
    };
    loaded = {
      model, info,
      tokenizer,
      prompts: template && new PromptEncoder(template, tokenizer, () => tokenizer.plain(), tokenizer.special),
      bosTokenId: tokenizerConfig.add_bos_token ? tokenizerConfig.bos_token_id : null,
      stopTokenIds: new Set([chatConfig.eos_token_id ?? [], conv.stop_token_ids ?? []].flat()),
      stopStrings: conv.stop_str ?? [],
      grammars: null, // the GrammarCompiler, made for the first request with a response_format
    };
    progress({ stage: "ready", text: `Loaded ${info.model} in ${info.loadTimeS.toFixed(1)} s`,
      loadedBytes: store.totalBytes, totalBytes: store.totalBytes, fraction: 1 });
    return info;
  } catch (error) {
    gpu?.device.destroy();
    throw error;
  }
}

function unload() {
  if (!loaded) return null;
  loaded.model.dispose();
  loaded.grammars?.then((compiler) => compiler.dispose(), () => {});
  loaded = null;
  return null;
}

/** A chat (request.messages) or a legacy completion (request.prompt: its chunks are "text_completion" ones).
 * @param {{id: number, request: import("./request.js").NormalizedRequest}} message */
async function chat({ id, request }) {
  if (!loaded) throw new ModelNotLoadedError();
  const { model, tokenizer, info } = loaded;
  const legacy = request.prompt !== undefined;
  const promptIds = legacy ? completionPromptIds(request.prompt) : await promptIdsOf(request.messages, request.tools);
  const room = model.contextWindowSize - promptIds.length;
  if (room < 1 || (request.maxTokens !== null && request.maxTokens > room)) {
    const [what, take] = legacy ? ["prompt", "takes"] : ["messages", "take"];
    const asked = request.maxTokens === null ? "" : ` and max_tokens asks for ${request.maxTokens} more`;
    throw new ContextLengthExceededError(`This model's context window is ${model.contextWindowSize} tokens; the `
      + `${what} ${take} ${promptIds.length}${asked}. Shorten the ${what} or lower max_tokens.`, what);
  }
  // compiled before "started", so that a schema it cannot compile rejects create() itself
  const grammarStart = performance.now();
  const grammar = request.tools ? toolCallGrammar(request.tools) : request.responseFormat;
  const constraint = grammar && await (await grammarCompiler()).constraint(grammar);
  const grammarInitS = (performance.now() - grammarStart) / 1000;
  post({ id, type: Reply.started });
  const meta = completionMeta(info.model, legacy ? "cmpl" : "chatcmpl");
  const send = (chunk) => post({ id, type: Reply.chunk, chunk });
  const logprobs = request.topLogprobs === null ? null
    : { top: request.topLogprobs, tokenBytes: (token) => loaded.tokenizer.tokenTable().bytes(token) };
  // With tools, what may be a call is held until the choice ends (ToolCallStream); logprobs go with the text
  // their tokens made, those of held text with the first chunk at the end.
  const outputs = request.tools && Array.from({ length: request.n }, () => ({
    stream: new ToolCallStream(request.tools.functions), logprobs: [],
  }));
  const onText = (text, tokens, index) => {
    if (legacy) {
      send(textChunk(meta, index, text));
      return;
    }
    const output = outputs?.[index];
    if (!output) {
      send(choiceChunk(meta, index, { content: text }, { logprobs: logprobs && tokens }));
      return;
    }
    output.logprobs.push(...tokens);
    const released = output.stream.push(text);
    if (released) {
      send(choiceChunk(meta, index, { content: released }, { logprobs: logprobs && output.logprobs }));
      output.logprobs = [];
    }
  };
  const onFinish = (finishReason, index) => {
    if (legacy) {
      send(textChunk(meta, index, "", finishReason));
      return;
    }
    const output = outputs?.[index];
    if (!output) send(choiceChunk(meta, index, {}, { finishReason }));
    else for (const chunk of toolCallChunks(meta, index, output.stream.finish(), logprobs && output.logprobs, finishReason)) send(chunk);
  };
  try {
    const result = await generate({
      model,
      promptIds,
      n: request.n,
      maxTokens: request.maxTokens ?? room,
      sampling: request,
      random: seededRandom(request.seed ?? crypto.getRandomValues(new Uint32Array(1))[0]),
      stopTokenIds: loaded.stopTokenIds,
      stopStrings: [...request.stop, ...loaded.stopStrings],
      decodeText: (ids) => tokenizer.decode(Int32Array.from(ids)),
      logprobs,
      logitsProcessor: constraint,
      isAborted: () => aborted.has(id),
      onChoice: (index) => {
        if (!legacy) send(choiceChunk(meta, index, { role: "assistant", content: "" }));
      },
      onText,
      onFinish,
    });
    const usage = usageOf(result);
    if (constraint) usage.extra.grammar_init_s = grammarInitS; // as WebLLM's
    send(usageChunk(meta, usage, legacy ? "text_completion" : "chat.completion.chunk"));
  } finally {
    constraint?.dispose();
  }
  return null;
}

/** The loaded bundle's GrammarCompiler, made on first use. */
function grammarCompiler() {
  const bundle = loaded;
  bundle.grammars ??= GrammarCompiler.create(bundle.tokenizer.tokenTable(), [...bundle.stopTokenIds]).catch((error) => {
    bundle.grammars = null; // try again on the next request
    throw error;
  });
  return bundle.grammars;
}

/** The prompt token ids of a conversation (and its tools): the chat template rendered, then tokenized (message
 * text as plain text: see PromptEncoder). */
async function promptIdsOf(messages, tools = null) {
  if (!loaded) throw new ModelNotLoadedError();
  if (!loaded.prompts) throw notAChatModel(loaded.info.model);
  const input = templateInput(messages, tools, loaded.prompts.template.takesTools);
  return loaded.prompts.encode(input.messages, input.tools);
}

/** The prompt token ids of a legacy completion: the BOS token first where the tokenizer adds one (Gemma's), then
 * the text, in which special tokens are read as such (as transformers' tokenizer(text) does). */
function completionPromptIds(prompt) {
  if (!loaded) throw new ModelNotLoadedError();
  const ids = Array.from(loaded.tokenizer.encode(prompt));
  return loaded.bosTokenId === null ? ids : [loaded.bosTokenId, ...ids];
}
