// The chat page: pick a bundle, load it with the in-browser engine, and chat with streaming answers.
import "./chat.css";
import { chatFailedMessage, cpuFallbackText, findWebGPUProblem, loadFailedMessage, webgpuProblemText } from "./errors.js";
import { formatDevice, formatMegabytes, formatProgress, formatStats } from "./format.js";
import { renderMarkdown } from "./markdown.js";

// The engine is its own module in /static (it starts /static/worker.js next to itself); importing it at run
// time keeps it out of this bundle and off the network until a model is loaded.
const ENGINE_MODULE_URL = new URL("./engine.js", import.meta.url).href;

const $ = (id) => document.getElementById(id);
const ui = {
  status: $("status"),
  notice: $("notice"),
  deviceInfo: $("device-info"),
  deviceInfoText: $("device-info-text"),
  deviceAdvice: $("device-advice"),
  loadForm: $("load-form"),
  picker: $("bundle-picker"),
  loadButton: $("load-button"),
  progress: $("load-progress"),
  progressBar: $("load-progress-bar"),
  progressLabel: $("load-progress-label"),
  systemPrompt: $("system-prompt"),
  temperature: $("temperature"),
  maxTokens: $("max-tokens"),
  transcript: $("transcript"),
  chatForm: $("chat-form"),
  message: $("message"),
  sendButton: $("send-button"),
  stopButton: $("stop-button"),
  newChatButton: $("new-chat-button"),
};

const state = {
  engine: null,
  loadedModel: null, // the name of the loaded bundle, as the picker gives it
  loading: false,
  generation: null, // the AbortController of the answer being streamed
  history: [], // {role, content} of the conversation so far, without the system prompt
};

function showNotice(text) {
  ui.notice.textContent = text;
  ui.notice.hidden = false;
}

function clearNotice() {
  ui.notice.hidden = true;
  ui.notice.textContent = "";
}

function refreshControls() {
  const busy = state.loading || state.generation !== null;
  const hasBundles = ui.picker.value !== ""; // the template offers one empty option when there are none
  ui.loadButton.disabled = busy || !hasBundles;
  ui.picker.disabled = busy || !hasBundles;
  ui.message.disabled = !state.loadedModel || state.loading;
  ui.sendButton.disabled = !state.loadedModel || busy;
  ui.stopButton.disabled = state.generation === null;
}

async function getEngine() {
  if (!state.engine) {
    const { createEngine } = await import(ENGINE_MODULE_URL);
    state.engine = await createEngine();
  }
  return state.engine;
}

function showProgress({ loadedBytes = 0, totalBytes = 0, fraction = 0, text = "" }) {
  ui.progressBar.value = fraction;
  const bytes = formatProgress(loadedBytes, totalBytes, fraction);
  ui.progressLabel.textContent = text ? `${bytes} · ${text}` : bytes;
}

async function loadSelectedBundle() {
  const url = ui.picker.value;
  const modelName = ui.picker.selectedOptions[0].dataset.name;
  clearNotice();
  state.loading = true;
  refreshControls();
  ui.status.textContent = `Loading ${modelName}…`;
  ui.progress.hidden = false;
  showProgress({});
  const started = performance.now();
  let totalBytes = 0;
  try {
    const engine = await getEngine();
    state.loadedModel = null; // load() replaces the loaded bundle, or leaves none when it fails
    const info = await engine.load(url, {
      onProgress: (progress) => {
        totalBytes = progress.totalBytes || totalBytes;
        showProgress(progress);
      },
    });
    state.loadedModel = modelName;
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    ui.status.textContent = `Ready: ${modelName} on ${formatDevice(info)}, ${formatMegabytes(totalBytes)} loaded in ${seconds} s`;
  } catch (error) {
    console.error(error);
    ui.status.textContent = "No model loaded";
    showNotice(loadFailedMessage(error, modelName));
  } finally {
    ui.progress.hidden = true;
    state.loading = false;
    refreshControls();
  }
  if (state.loadedModel) ui.message.focus();
}

function appendMessage(role) {
  ui.transcript.querySelector(".transcript-empty")?.remove();
  const article = document.createElement("article");
  article.className = `message message-${role}`;
  const heading = document.createElement("h2");
  heading.className = "message-role";
  heading.textContent = role === "user" ? "You" : "Assistant";
  const body = document.createElement("div");
  body.className = "message-body";
  article.append(heading, body);
  ui.transcript.append(article);
  return { article, body };
}

function scrollToEnd() {
  ui.transcript.scrollTop = ui.transcript.scrollHeight;
}

// Re-rendering the markdown once per animation frame at most: tokens can arrive faster than frames.
function markdownRenderer(body) {
  let text = "";
  let frame = 0;
  const render = () => {
    frame = 0;
    body.innerHTML = renderMarkdown(text);
    scrollToEnd();
  };
  return {
    update(newText) {
      text = newText;
      frame ||= requestAnimationFrame(render);
    },
    flush() {
      cancelAnimationFrame(frame);
      render();
    },
  };
}

function chatRequest(signal) {
  const messages = [];
  const systemPrompt = ui.systemPrompt.value.trim();
  if (systemPrompt) messages.push({ role: "system", content: systemPrompt });
  messages.push(...state.history);
  const request = {
    messages,
    stream: true,
    stream_options: { include_usage: true },
    max_tokens: Math.max(1, Math.round(Number(ui.maxTokens.value) || 256)),
    signal,
  };
  // Empty means the bundle's own default temperature.
  if (ui.temperature.value !== "") request.temperature = Number(ui.temperature.value);
  return request;
}

async function send(text) {
  clearNotice();
  const history = state.history; // New chat replaces it: a stopped answer must not land in the new one
  history.push({ role: "user", content: text });
  appendMessage("user").body.textContent = text;
  const answer = appendMessage("assistant");
  answer.article.setAttribute("aria-busy", "true");
  answer.body.classList.add("pending");
  const renderer = markdownRenderer(answer.body);
  scrollToEnd();

  const controller = new AbortController();
  state.generation = controller;
  refreshControls();
  let content = "";
  let usage = null;
  let finishReason = null;
  let failure = null;
  try {
    const stream = await state.engine.chat.completions.create(chatRequest(controller.signal));
    for await (const chunk of stream) {
      const delta = chunk.choices[0]?.delta?.content;
      if (delta) {
        content += delta;
        answer.body.classList.remove("pending");
        renderer.update(content);
      }
      finishReason = chunk.choices[0]?.finish_reason ?? finishReason;
      if (chunk.usage) usage = chunk.usage;
    }
  } catch (error) {
    if (!controller.signal.aborted) failure = error;
  }
  renderer.flush();
  answer.body.classList.remove("pending");
  answer.article.removeAttribute("aria-busy");
  const stopped = controller.signal.aborted;

  const stats = document.createElement("p");
  stats.className = "message-stats";
  if (failure) {
    console.error(failure);
    // The failed turn leaves the history, and its text goes back to the input to edit or resend.
    history.pop();
    answer.article.classList.add("message-failed");
    stats.textContent = chatFailedMessage(failure);
    stats.setAttribute("role", "alert");
    if (!ui.message.value) ui.message.value = text;
  } else {
    if (content) history.push({ role: "assistant", content });
    const parts = [];
    if (stopped) parts.push("stopped");
    if (usage) parts.push(formatStats(usage, finishReason));
    stats.textContent = parts.join(" · ");
  }
  if (stats.textContent) answer.article.append(stats);
  if (state.generation === controller) state.generation = null;
  refreshControls();
  scrollToEnd();
}

function newChat() {
  state.generation?.abort();
  state.generation = null;
  state.history = [];
  ui.transcript.replaceChildren();
  clearNotice();
  refreshControls();
  ui.message.focus();
}

ui.loadForm.addEventListener("submit", (event) => {
  event.preventDefault();
  if (!state.loading) loadSelectedBundle();
});

ui.chatForm.addEventListener("submit", (event) => {
  event.preventDefault();
  const text = ui.message.value.trim();
  if (!text || !state.loadedModel || state.generation) return;
  ui.message.value = "";
  send(text);
});

// Enter sends; Shift+Enter is a new line; Enter while an input method composes a character is neither.
ui.message.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
    event.preventDefault();
    ui.chatForm.requestSubmit();
  }
});

ui.stopButton.addEventListener("click", () => state.generation?.abort());
ui.newChatButton.addEventListener("click", newChat);

refreshControls();
findWebGPUProblem().then((problem) => {
  if (!problem) return;
  ui.deviceInfoText.textContent = cpuFallbackText();
  ui.deviceAdvice.textContent = webgpuProblemText(problem);
  ui.deviceInfo.hidden = false;
});
