// tabllm's in-browser engine, main-thread side: an OpenAI-style API (engine.chat.completions.create) over a
// dedicated Web Worker that owns tvmjs, the device (WebGPU, or the CPU through WebAssembly), the model and its
// KV cache.
//
//   const engine = await createEngine();
//   await engine.load("/bundles/<bundle_id>/", {onProgress: (p) => console.log(p.stage, p.fraction)});
//   const reply = await engine.chat.completions.create({messages: [{role: "user", content: "Hi"}]});
//   for await (const chunk of await engine.chat.completions.create({messages, stream: true})) ...
//   const text = await engine.completions.create({prompt: "Once upon a time", max_tokens: 32}); // a base model
import { deleteCachedBundle, listCachedBundles } from "./bundle-cache.js";
import { collectCompletion, collectTextCompletion } from "./completion.js";
import {
  AbortError, EngineCrashedError, InvalidRequestError, ModelNotLoadedError, fromWire, notAChatModel, toWire,
} from "./errors.js";
import { Op, Reply, isFinal } from "./protocol.js";
import { validateChatRequest, validateCompletionRequest, validateMessages } from "./request.js";

export {
  AbortError, BundleError, ContextLengthExceededError, EngineCrashedError, EngineError, InternalEngineError,
  InvalidRequestError, ModelNotLoadedError, WebGPUUnavailableError,
} from "./errors.js";
export { engineFetch } from "./openai-fetch.js";

/**
 * @typedef {import("./bundle-store.js").LoadProgress} LoadProgress
 * @typedef {import("./bundle-cache.js").CachedBundle} CachedBundle
 * @typedef {{bundleId: string, model: string, quantization: string, device: "webgpu" | "wasm",
 *            library: "webgpu" | "wasm32" | "wasm32-relaxed",
 *            adapter: {vendor: string, architecture: string} | null, threads: number | null,
 *            threadsLimitedBy: string | null, cpuBecause: string | null, contextWindowSize: number,
 *            chatTemplate: boolean, vocabSize: number,
 *            temperature: number, topP: number, loadTimeS: number}} BundleInfo
 * `library`: which of the bundle's model libraries runs (on the CPU, relaxed SIMD where the browser has it);
 * `threads`: how many threads run the CPU library (null on WebGPU); `threadsLimitedBy`: why only one, when
 * more were wanted (a page that is not cross-origin isolated); `cpuBecause`: why device "auto" runs on the CPU
 * although a hardware GPU is there (its WebGPU limits are too small for the model); `chatTemplate`: whether the
 * model chats (false for a base model, which serves completions.create only).
 */

const DEVICES = ["auto", "webgpu", "wasm"];
const MAX_THREADS = 64; // each thread is a Web Worker with a 1 MB stack in the model's memory

/**
 * Start the engine and its worker (dist/worker.js, next to this module).
 * @param {{createWorker?: () => Worker}} [options] `createWorker`: starts a Worker running worker.js from
 *   another URL; called again when load() replaces a crashed worker
 */
export async function createEngine(options = {}) {
  return new Engine(options.createWorker
    ?? (() => new Worker(new URL("./worker.js", import.meta.url), { type: "module" })));
}

/**
 * States: nothing loaded (bundle null) -> loading (bundle null) -> loaded (bundle set) -> unloaded; and crashed
 * (the worker died or lost its GPU device: every call fails with EngineCrashedError until load() starts a new
 * worker). `bundle` is set only by the latest load() or unload(): a load that a later load() or unload()
 * supersedes rejects with AbortError (code "load_superseded") and changes nothing, so `bundle` always names
 * what the worker holds. The worker runs calls one at a time, in the order they were made.
 */
export class Engine {
  /** @param {() => Worker} createWorker */
  constructor(createWorker) {
    this.createWorker = createWorker;
    this.nextId = 1;
    /** @type {Map<number, (message: any) => void>} */
    this.listeners = new Map();
    /** @type {BundleInfo | null} the loaded bundle */
    this.bundle = null;
    /** numbers each load() and unload(): a load's result counts only if no later one was made meanwhile */
    this.loadGeneration = 0;
    /** @type {EngineCrashedError | null} why the worker is gone, until load() starts another */
    this.crash = null;
    this.chat = { completions: { create: (request) => this.createCompletion(request) } };
    this.completions = { create: (request) => this.createTextCompletion(request) };
    this.startWorker();
  }

  startWorker() {
    const worker = this.createWorker();
    worker.onmessage = ({ data }) => {
      if (worker !== this.worker) return; // a late message from a worker already replaced
      if (data.type === Reply.deviceLost) {
        this.crashed(new EngineCrashedError(`The GPU device was lost (${data.message})`, "device_lost"));
      } else {
        this.listeners.get(data.id)?.(data);
      }
    };
    worker.onerror = (event) => {
      if (worker === this.worker) {
        this.crashed(new EngineCrashedError(`The engine worker failed: ${event.message || "it could not start"}`,
          "worker_crashed"));
      }
    };
    this.worker = worker;
    this.crash = null;
  }

  /** The worker cannot be trusted any more: stop it, and fail every pending call with `error`. */
  crashed(error) {
    this.crash = error;
    this.bundle = null;
    this.worker.terminate();
    const pending = [...this.listeners.values()];
    this.listeners.clear();
    for (const listener of pending) listener({ type: Reply.error, error: toWire(error) });
  }

  /** "webgpu" or "wasm" once a bundle is loaded (the device its model library runs on), else null. */
  get device() {
    return this.bundle?.device ?? null;
  }

  /**
   * Load a bundle (replacing the loaded one): files verified by sha256 and cached by bundle id, weights on the
   * device. `device`: "webgpu", "wasm" (the CPU, WebAssembly SIMD) or "auto" (default: WebGPU on a hardware
   * adapter, the CPU without WebGPU or with only a software adapter). `threads`: how many threads run the CPU
   * library (default: one per core; one where the page is not cross-origin isolated). After a crash, starts a
   * new worker.
   * @param {string} bundleUrl base URL of the bundle directory, e.g. "/bundles/0ffebf7013271dba/"
   * @param {{onProgress?: (p: LoadProgress) => void, device?: "auto" | "webgpu" | "wasm", threads?: number}}
   *   [options]
   * @returns {Promise<BundleInfo>}
   */
  async load(bundleUrl, options = {}) {
    const url = httpUrl(bundleUrl);
    const { onProgress, device, threads } = loadOptions(options);
    const generation = ++this.loadGeneration;
    this.bundle = null;
    if (this.crash) this.startWorker();
    // Ask that the cached bundle not be evicted under storage pressure (only a page may ask; the browser may
    // refuse, and then the cache is merely best-effort).
    globalThis.navigator?.storage?.persist?.().catch(() => {});
    const info = await this.call({ op: Op.load, bundleUrl: url, device, threads }, (message) => {
      if (message.type === Reply.progress) onProgress?.(message.progress);
    });
    if (generation !== this.loadGeneration) {
      throw new AbortError(`load(${JSON.stringify(bundleUrl)}) was superseded by a later load() or unload()`,
        "load_superseded");
    }
    this.bundle = info;
    return info;
  }

  /**
   * The bundles kept in the browser (OPFS, or the Cache API), with the bytes each holds there.
   * @returns {Promise<CachedBundle[]>}
   */
  async cachedBundles() {
    return listCachedBundles();
  }

  /**
   * Delete a bundle from the browser's storage (the loaded model, if it is that one, stays loaded). Resolves false
   * if it was not cached. @param {string} bundleId
   */
  async deleteCachedBundle(bundleId) {
    return deleteCachedBundle(bundleId);
  }

  /** Delete every cached bundle but the loaded one (all of them when none is loaded); resolves with the ids
   * deleted. @returns {Promise<string[]>} */
  async deleteOtherCachedBundles() {
    const keep = this.bundle?.bundleId;
    const others = (await listCachedBundles()).map((b) => b.bundleId).filter((id) => id !== keep);
    for (const id of others) await deleteCachedBundle(id);
    return others;
  }

  /** Free the model, its GPU memory and KV cache; a running generation ends with finish_reason "abort". */
  async unload() {
    this.loadGeneration++;
    this.bundle = null;
    if (!this.crash) await this.call({ op: Op.unload });
  }

  /** End the running (and queued) generations: each finishes with finish_reason "abort". */
  interrupt() {
    if (!this.crash) this.worker.postMessage({ op: Op.interrupt });
  }

  /**
   * The prompt token ids the engine feeds the model for chat `messages` (the chat template, then the tokenizer),
   * or for a completion's `prompt` text (the BOS token first where the model wants one).
   * @param {Array<{role: string, content: string}> | string} input
   * @returns {Promise<number[]>}
   */
  async promptIds(input) {
    this.checkLoaded();
    return this.call({ op: Op.promptIds, input: typeof input === "string" ? input : validateMessages(input) });
  }

  checkLoaded() {
    if (this.crash) throw fromWire(toWire(this.crash));
    if (!this.bundle) throw new ModelNotLoadedError();
  }

  /**
   * OpenAI chat.completions.create: a ChatCompletion, or with `stream: true` an async iterable of
   * ChatCompletionChunk. `signal` (an AbortSignal) ends the generation with finish_reason "abort"; a signal
   * already aborted rejects with AbortError (as the OpenAI SDK) and runs nothing. Every argument is checked
   * before the worker sees the request: errors throw InvalidRequestError; a prompt too long for the context,
   * ContextLengthExceededError.
   */
  async createCompletion(request) {
    this.checkLoaded();
    const normalized = validateChatRequest(request, this.bundle);
    if (!this.bundle.chatTemplate) throw notAChatModel(this.bundle.model);
    return this.generate(normalized, request.signal, collectCompletion);
  }

  /**
   * OpenAI's legacy completions.create, for any model (a base model has no other): the prompt's continuation as a
   * Completion ({choices: [{text, finish_reason}], usage}), or with `stream: true` an async iterable of its chunks
   * ("text_completion" objects with `text`). prompt, max_tokens (default 16, as OpenAI), temperature, top_p,
   * stop, seed, stream, stream_options and signal as in chat.completions.create.
   */
  async createTextCompletion(request) {
    this.checkLoaded();
    return this.generate(validateCompletionRequest(request, this.bundle), request.signal, collectTextCompletion);
  }

  /** Run a checked request in the worker: its chunks, or what `collect` makes of them when it is not streamed.
   * @param {import("./request.js").NormalizedRequest} normalized @param {AbortSignal | undefined} signal
   * @param {(chunks: any[]) => any} collect */
  async generate(normalized, signal, collect) {
    if (signal?.aborted) {
      throw new AbortError("Request was aborted: its signal was aborted before it started", "request_aborted");
    }
    const id = this.nextId++;
    const abort = () => {
      if (!this.crash) this.worker.postMessage({ op: Op.abort, target: id });
    };
    const chunks = new ChunkQueue(abort);
    signal?.addEventListener("abort", abort, { once: true });
    const started = new Promise((resolve, reject) => {
      const onEvent = (message) => {
        if (message.type === Reply.started) resolve(undefined);
        else chunks.push(message.chunk);
      };
      this.call({ op: Op.chat, request: normalized }, onEvent, id).then(() => chunks.end(), (error) => {
        reject(error); // failing before "started" (e.g. context_length_exceeded) fails create() itself
        chunks.fail(error);
      }).finally(() => signal?.removeEventListener("abort", abort));
    });
    await started;
    if (!normalized.stream) {
      const all = [];
      for await (const chunk of chunks) all.push(chunk);
      return collect(all);
    }
    return normalized.includeUsage ? chunks : withoutUsage(chunks);
  }

  /**
   * Send one operation to the worker and resolve with its result (reject at once if the worker is gone).
   * @param {any} message @param {(message: any) => void} [onEvent] progress, started and chunk messages
   * @param {number} [id]
   */
  call(message, onEvent, id = this.nextId++) {
    return new Promise((resolve, reject) => {
      if (this.crash) {
        reject(fromWire(toWire(this.crash)));
        return;
      }
      this.listeners.set(id, (reply) => {
        if (isFinal(reply)) {
          this.listeners.delete(id);
          if (reply.type === Reply.result) resolve(reply.value);
          else reject(fromWire(reply.error));
        } else {
          onEvent?.(reply);
        }
      });
      this.worker.postMessage({ ...message, id });
    });
  }
}

/** An absolute http(s) URL for load()'s bundleUrl (relative URLs are taken from the page's location). */
function httpUrl(value) {
  const invalid = (why) => new InvalidRequestError(`bundleUrl ${why}, e.g. "/bundles/<bundle_id>/"`, "bundleUrl");
  if (typeof value !== "string" || value.trim() === "") throw invalid(`must be a non-empty string (got ${typeof value})`);
  let url;
  try {
    url = new URL(value, globalThis.location?.href);
  } catch {
    throw invalid(`${JSON.stringify(value)} is not a URL`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw invalid(`must be an http or https URL (got ${url.protocol})`);
  }
  return url.href;
}

/** load()'s options, checked: an object with an optional onProgress function, device name and thread count. */
function loadOptions(options) {
  if (options === null || typeof options !== "object" || Array.isArray(options)) {
    throw new InvalidRequestError("load() options must be an object {onProgress, device, threads}", null);
  }
  const { onProgress, device = "auto", threads } = options;
  if (onProgress !== undefined && typeof onProgress !== "function") {
    throw new InvalidRequestError("onProgress must be a function", "onProgress");
  }
  if (!DEVICES.includes(device)) {
    throw new InvalidRequestError(`device must be one of ${DEVICES.join(", ")}; got ${JSON.stringify(device)}`,
      "device");
  }
  if (threads !== undefined && !(Number.isInteger(threads) && threads >= 1 && threads <= MAX_THREADS)) {
    throw new InvalidRequestError(`threads must be an integer from 1 to ${MAX_THREADS}; got ${JSON.stringify(threads)}`,
      "threads");
  }
  return { onProgress, device, threads };
}

/** Chunks as they arrive from the worker, as an async iterable; leaving the loop early aborts the generation. */
class ChunkQueue {
  /** @param {() => void} abort */
  constructor(abort) {
    this.abort = abort;
    this.items = [];
    this.finished = false;
    this.error = null;
    this.wake = null;
  }

  push(chunk) {
    this.items.push(chunk);
    this.notify();
  }

  end() {
    this.finished = true;
    this.notify();
  }

  fail(error) {
    this.error = error;
    this.end();
  }

  notify() {
    this.wake?.();
    this.wake = null;
  }

  async *[Symbol.asyncIterator]() {
    try {
      for (;;) {
        if (this.items.length) yield this.items.shift();
        else if (this.error) throw this.error;
        else if (this.finished) return;
        else await new Promise((resolve) => (this.wake = resolve));
      }
    } finally {
      if (!this.finished) this.abort();
    }
  }
}

/** The stream without the usage chunk (sent only when stream_options.include_usage is true, as OpenAI). */
async function* withoutUsage(chunks) {
  for await (const chunk of chunks) if (chunk.choices.length) yield chunk;
}
