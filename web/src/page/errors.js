// What to tell a person when something fails: what happened and what to do about it.

// Why WebGPU is not there: no secure context, no API at all, or an API that offers no adapter.
export async function findWebGPUProblem() {
  if (!window.isSecureContext) return "insecure-context";
  if (!navigator.gpu) return "no-api";
  try {
    return (await navigator.gpu.requestAdapter()) ? null : "no-adapter";
  } catch {
    return "no-adapter";
  }
}

// Without WebGPU the model still runs, on the CPU: a line of information says so, and the advice on getting
// WebGPU (why it is missing, what to change) waits behind its "why".
export function cpuFallbackText() {
  const threads = self.crossOriginIsolated ? navigator.hardwareConcurrency || 1 : 1;
  return `No WebGPU here: tabllm runs the model on this computer's CPU (WebAssembly, ${threads} ` +
    `thread${threads === 1 ? "" : "s"}).`;
}

export function webgpuProblemText(problem) {
  if (problem === "insecure-context") {
    return `This page was opened over plain HTTP from ${location.host}, so the browser hides WebGPU (it needs a ` +
      "secure context). Open it at http://127.0.0.1 or http://localhost on the machine running the server, " +
      "or serve it over HTTPS.";
  }
  if (problem === "no-adapter") {
    return "This browser has WebGPU but offers no GPU adapter to it: WebGPU may be switched off, or the GPU or " +
      "its driver blocklisted. In Chrome or Edge, check chrome://gpu; on Linux, enable chrome://flags/#enable-unsafe-webgpu " +
      "and chrome://flags/#enable-vulkan, then restart the browser. Updating the GPU driver can also help.";
  }
  return "This browser does not offer WebGPU, which runs the model on the GPU. Use a recent Chrome or Edge " +
    "(version 113 or later) on desktop or Android, or Safari 26 or later; in Firefox, WebGPU may need to be " +
    "enabled. If WebGPU is turned off in the browser's settings or flags, turn it on and reload.";
}

// The engine's errors carry an OpenAI-shaped body; its `code` (also on the error itself) says what failed.
function errorCode(error) {
  return error?.code;
}

export function loadFailedMessage(error, modelName) {
  if (errorCode(error) === "webgpu_unavailable") {
    return `${webgpuProblemText("no-adapter")} (${error.message})`;
  }
  return `Could not load ${modelName}: ${error?.message ?? error}. Check that the server is still running and ` +
    "reload the page; if it fails again, rebuild the bundle with python -m compile.";
}

export function chatFailedMessage(error) {
  const code = errorCode(error);
  if (code === "context_length_exceeded") {
    return "The conversation no longer fits in the model's context window. Start a new chat, or shorten your message.";
  }
  if (code === "model_not_loaded") {
    return "No model is loaded: press Load, then send your message again.";
  }
  return `The model failed to answer: ${error?.message ?? error}. Send the message again, or reload the page.`;
}
