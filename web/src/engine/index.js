// tabllm's in-browser engine, main-thread side: an OpenAI-style API (engine.chat.completions.create) over a
// dedicated Web Worker that owns tvmjs, the device (WebGPU, or the CPU through WebAssembly), the model and its
// KV cache.
//
//   const engine = await createEngine();
//   await engine.load("/bundles/<bundle_id>/", {onProgress: (p) => console.log(p.stage, p.fraction)});
//   const reply = await engine.chat.completions.create({messages: [{role: "user", content: "Hi"}]});
//   for await (const chunk of await engine.chat.completions.create({messages, stream: true})) ...
import { collectCompletion } from "./completion.js";
import { InternalEngineError, InvalidRequestError, ModelNotLoadedError, fromWire } from "./errors.js";
import { validateChatRequest } from "./request.js";

export {
  BundleError, ContextLengthExceededError, EngineError, InternalEngineError, InvalidRequestError,
  ModelNotLoadedError, WebGPUUnavailableError,
} from "./errors.js";

/**
 * @typedef {import("./bundle-store.js").LoadProgress} LoadProgress
 * @typedef {{bundleId: string, model: string, quantization: string, device: "webgpu" | "wasm",
 *            adapter: {vendor: string, architecture: string} | null, contextWindowSize: number, vocabSize: number,
 *            temperature: number, topP: number, loadTimeS: number}} BundleInfo
 */

const DEVICES = ["auto", "webgpu", "wasm"];

/**
 * Start the engine's worker (dist/worker.js, next to this module).
 * @param {{worker?: Worker}} [options] `worker`: a Worker running worker.js that you created yourself (other URL)
 */
export async function createEngine(options = {}) {
  return new Engine(options.worker ?? new Worker(new URL("./worker.js", import.meta.url), { type: "module" }));
}

export class Engine {
  /** @param {Worker} worker */
  constructor(worker) {
    this.worker = worker;
    this.nextId = 1;
    /** @type {Map<number, (message: any) => void>} */
    this.listeners = new Map();
    /** @type {BundleInfo | null} the loaded bundle */
    this.bundle = null;
    this.chat = { completions: { create: (request) => this.createCompletion(request) } };
    worker.onmessage = ({ data }) => this.listeners.get(data.id)?.(data);
    worker.onerror = (event) => {
      const error = new InternalEngineError(`The engine worker failed: ${event.message ?? "could not start"}`);
      for (const listener of this.listeners.values()) listener({ type: "error", error: { name: error.name, body: error.body } });
    };
  }

  /** "webgpu" or "wasm" once a bundle is loaded (the device its model library runs on), else null. */
  get device() {
    return this.bundle?.device ?? null;
  }

  /**
   * Load a bundle (replacing the loaded one): files verified by sha256 and cached by bundle id, weights on the
   * device. `device`: "webgpu", "wasm" (the CPU, WebAssembly SIMD) or "auto" (default: WebGPU on a hardware
   * adapter, the CPU without WebGPU or with only a software adapter).
   * @param {string} bundleUrl base URL of the bundle directory, e.g. "/bundles/0ffebf7013271dba/"
   * @param {{onProgress?: (p: LoadProgress) => void, device?: "auto" | "webgpu" | "wasm"}} [options]
   * @returns {Promise<BundleInfo>}
   */
  async load(bundleUrl, { onProgress, device = "auto" } = {}) {
    if (!DEVICES.includes(device)) {
      throw new InvalidRequestError(`device must be one of ${DEVICES.join(", ")}; got ${JSON.stringify(device)}`,
        "device");
    }
    this.bundle = null;
    this.bundle = await this.call({ op: "load", bundleUrl, pageUrl: globalThis.location.href, device }, (message) => {
      if (message.type === "progress") onProgress?.(message.progress);
    });
    return this.bundle;
  }

  /** Free the model, its GPU memory and KV cache; a running generation ends with finish_reason "abort". */
  async unload() {
    this.bundle = null;
    await this.call({ op: "unload" });
  }

  /** End the running (and queued) generations: each finishes with finish_reason "abort". */
  interrupt() {
    this.worker.postMessage({ op: "interrupt" });
  }

  /**
   * The prompt token ids the engine feeds the model for `messages` (the chat template, then the tokenizer).
   * @param {Array<{role: string, content: string}>} messages
   * @returns {Promise<number[]>}
   */
  promptIds(messages) {
    if (!this.bundle) return Promise.reject(new ModelNotLoadedError());
    return this.call({ op: "promptIds", messages });
  }

  /**
   * OpenAI chat.completions.create: a ChatCompletion, or with `stream: true` an async iterable of
   * ChatCompletionChunk. `signal` (an AbortSignal) ends the generation with finish_reason "abort".
   * Argument errors throw InvalidRequestError; a prompt too long for the context, ContextLengthExceededError.
   */
  async createCompletion(request) {
    if (!this.bundle) throw new ModelNotLoadedError();
    const normalized = validateChatRequest(request, this.bundle);
    const { signal } = request;
    const id = this.nextId++;
    const abort = () => this.worker.postMessage({ op: "abort", target: id });
    const chunks = new ChunkQueue(abort);
    const started = new Promise((resolve, reject) => {
      const onEvent = (message) => {
        if (message.type === "started") resolve(undefined);
        else chunks.push(message.chunk);
      };
      this.call({ op: "chat", request: normalized }, onEvent, id).then(() => chunks.end(), (error) => {
        reject(error); // failing before "started" (e.g. context_length_exceeded) fails create() itself
        chunks.fail(error);
      }).finally(() => signal?.removeEventListener("abort", abort));
    });
    if (signal?.aborted) abort();
    else signal?.addEventListener("abort", abort, { once: true });
    await started;
    if (!normalized.stream) {
      const all = [];
      for await (const chunk of chunks) all.push(chunk);
      return collectCompletion(all);
    }
    return normalized.includeUsage ? chunks : withoutUsage(chunks);
  }

  /**
   * Send one operation to the worker and resolve with its result.
   * @param {any} message @param {(message: any) => void} [onEvent] progress, started and chunk messages
   * @param {number} [id]
   */
  call(message, onEvent, id = this.nextId++) {
    return new Promise((resolve, reject) => {
      this.listeners.set(id, (reply) => {
        if (reply.type === "result" || reply.type === "error") {
          this.listeners.delete(id);
          if (reply.type === "result") resolve(reply.value);
          else reject(fromWire(reply.error));
        } else {
          onEvent?.(reply);
        }
      });
      this.worker.postMessage({ ...message, id });
    });
  }
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
