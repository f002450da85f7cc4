// Errors of the engine. Each carries an OpenAI-shaped body {message, type, param, code} (what the OpenAI API
// returns under "error"), survives the trip from the worker to the page (`toBody` / `errorFromBody`), and is
// an Error subclass so `instanceof` and stack traces work as usual.

/** @typedef {{message: string, type: string, param: string | null, code: string | null}} ErrorBody */

export class EngineError extends Error {
  /** @param {string} message @param {{type: string, code: string | null, param?: string | null}} fields */
  constructor(message, { type, code, param = null }) {
    super(message);
    this.name = new.target.name;
    /** @type {string} */ this.type = type;
    /** @type {string | null} */ this.code = code;
    /** @type {string | null} */ this.param = param;
  }

  /** @returns {ErrorBody} */
  get body() {
    return { message: this.message, type: this.type, param: this.param, code: this.code };
  }
}

/** A request argument is missing, of the wrong type or out of range; `param` names it. */
export class InvalidRequestError extends EngineError {
  /** @param {string} message @param {string | null} param @param {string} [code] */
  constructor(message, param, code = "invalid_value") {
    super(message, { type: "invalid_request_error", code, param });
  }
}

/** The prompt (plus max_tokens) does not fit the model's context window. */
export class ContextLengthExceededError extends EngineError {
  /** @param {string} message @param {"messages" | "prompt"} [param] */
  constructor(message, param = "messages") {
    super(message, { type: "invalid_request_error", code: "context_length_exceeded", param });
  }
}

/** What chat.completions.create() (and promptIds(messages)) throws for a model without a chat template.
 * @param {string} model */
export const notAChatModel = (model) => new InvalidRequestError(`${model} has no chat template (it is a base `
  + "model, not a chat model): continue a text with engine.completions.create({prompt}) instead", "messages",
  "model_not_chat");

/** chat.completions.create() before load() finished, or after unload(). */
export class ModelNotLoadedError extends EngineError {
  constructor(message = "No model is loaded: call engine.load(bundleUrl) first") {
    super(message, { type: "invalid_request_error", code: "model_not_loaded" });
  }
}

/** The browser has no WebGPU, no adapter, or an adapter whose limits are too small for the model. */
export class WebGPUUnavailableError extends EngineError {
  /** @param {string} message */
  constructor(message) {
    super(message, { type: "environment_error", code: "webgpu_unavailable" });
  }
}

/** A bundle cannot be fetched, is malformed, a file fails its sha256 check even when fetched again, its download
 * was cut off (the next load resumes it), or the browser's storage quota cannot hold it. */
export class BundleError extends EngineError {
  /** @param {string} message @param {string} code bundle_fetch_failed | bundle_invalid | bundle_checksum_mismatch
   *   | bundle_download_interrupted | bundle_storage_quota | bundle_storage_busy */
  constructor(message, code) {
    super(message, { type: "bundle_error", code });
  }
}

/** The request was cancelled before it started: its `signal` was already aborted (as the OpenAI SDK's
 * APIUserAbortError), or a load() was superseded by a later load() or unload(). */
export class AbortError extends EngineError {
  /** @param {string} message @param {string} code request_aborted | load_superseded */
  constructor(message, code) {
    super(message, { type: "invalid_request_error", code });
  }
}

/** The engine's worker died, or the GPU device was lost: nothing loaded survives. `load()` starts a new worker. */
export class EngineCrashedError extends EngineError {
  /** @param {string} message @param {string} code worker_crashed | device_lost */
  constructor(message, code) {
    super(`${message}; load a bundle again (engine.load) to continue`, { type: "server_error", code });
  }
}

/** Anything unexpected inside the engine (a tvmjs or WebGPU failure); the message says what. */
export class InternalEngineError extends EngineError {
  /** @param {string} message */
  constructor(message) {
    super(message, { type: "server_error", code: "internal_error" });
  }
}

const CLASSES = {
  InvalidRequestError, ContextLengthExceededError, ModelNotLoadedError, WebGPUUnavailableError, BundleError,
  AbortError, EngineCrashedError, InternalEngineError,
};

/** What the worker posts for an error: its class name and body. Unknown errors become InternalEngineError. */
export function toWire(error) {
  if (error instanceof EngineError) return { name: error.name, body: error.body };
  const message = error instanceof Error ? `${error.name}: ${error.message}` : String(error);
  return { name: "InternalEngineError", body: new InternalEngineError(message).body };
}

/** The Error subclass instance for what `toWire` produced (on the page side of the worker). */
export function fromWire({ name, body }) {
  const error = new EngineError(body.message, body);
  Object.setPrototypeOf(error, (CLASSES[name] ?? InternalEngineError).prototype);
  error.name = CLASSES[name] ? name : "InternalEngineError";
  return error;
}
