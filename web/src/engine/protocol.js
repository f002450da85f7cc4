// The messages between the engine (index.js, on the page) and its Web Worker (worker.js): the one definition
// both sides use, so an operation or reply type cannot be misspelled on one side only.
//
// Page -> worker (`id` numbers a call; the worker answers it with events and one result or error):
//   {op: Op.load, id, bundleUrl (absolute), device: "auto" | "webgpu" | "wasm", threads: number | undefined}
//                                                                             -> progress*, result (BundleInfo)
//   {op: Op.chat, id, request: NormalizedRequest (messages, or a legacy prompt)} -> started, chunk*, result (null)
//   {op: Op.promptIds, id, input: messages or a completion's prompt text}      -> result (number[])
//   {op: Op.unload, id}                                                        -> result (null)
//   {op: Op.abort, target}  ends chat `target` (finish_reason "abort"); no reply
//   {op: Op.interrupt}      ends every queued and running chat; no reply
// Worker -> page:
//   {id, type: Reply.progress, progress} | {id, type: Reply.started} | {id, type: Reply.chunk, chunk}
//   | {id, type: Reply.result, value} | {id, type: Reply.error, error: WireError}
//   | {type: Reply.deviceLost, message}  (no id: the GPU device is gone; the worker cannot run a model again)

export const Op = Object.freeze({
  load: "load",
  chat: "chat",
  promptIds: "promptIds",
  unload: "unload",
  abort: "abort",
  interrupt: "interrupt",
});

export const Reply = Object.freeze({
  progress: "progress",
  started: "started",
  chunk: "chunk",
  result: "result",
  error: "error",
  deviceLost: "deviceLost",
});

/** Replies that end a call: after one of them no other message comes for that id. */
export const isFinal = (reply) => reply.type === Reply.result || reply.type === Reply.error;
