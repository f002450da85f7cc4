// The chat page: pick a bundle, load it with the in-browser engine, and chat with streaming answers. A model
// without a chat template (a base model) cannot chat: the page says so, and continues the user's text instead
// (engine.completions.create).
import "./chat.css";
import { chatFailedMessage, cpuFallbackText, findWebGPUProblem, loadFailedMessage, webgpuProblemText } from "./errors.js";
import { bundleLoaderUi, createPageEngine, loadPickedBundle, pickedModelName } from "./bundle-loader.js";
import { formatMegabytes, formatStats } from "./format.js";
import { renderMarkdown } from "./markdown.js";

const $ = (id) => document.getElementById(id);
const ui = {
  ...bundleLoaderUi(),
  notice: $("notice"),
  deviceInfo: $("device-info"),
  deviceInfoText: $("device-info-text"),
  deviceAdvice: $("device-advice"),
  modeInfo: $("mode-info"),
  systemPrompt: $("system-prompt"),
  temperature: $("temperature"),
  maxTokens: $("max-tokens"),
  transcript: $("transcript"),
  chatForm: $("chat-form"),
  message: $("message"),
  sendButton: $("send-button"),
  stopButton: $("stop-button"),
  newChatButton: $("new-chat-button"),
  cachedModels: $("cached-models"),
  cachedList: $("cached-list"),
  cachedEmpty: $("cached-empty"),
};

const state = {
  engine: null,
  loadedModel: null, // the name of the loaded bundle, as the picker gives it
  chat: true, // whether the loaded model chats (it has a chat template); if not, the user's text is continued
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
  ui.systemPrompt.disabled = !state.chat;
  ui.sendButton.disabled = !state.loadedModel || busy;
  ui.stopButton.disabled = state.generation === null;
}

async function loadSelectedBundle() {
  const modelName = pickedModelName(ui);
  clearNotice();
  state.loading = true;
  refreshControls();
  try {
    state.engine ??= await createPageEngine();
    state.loadedModel = null; // load() replaces the loaded bundle, or leaves none when it fails
    state.loadedModel = await loadPickedBundle(state.engine, ui);
    showMode(state.engine.bundle.chatTemplate);
  } catch (error) {
    console.error(error);
    showNotice(loadFailedMessage(error, modelName));
  } finally {
    state.loading = false;
    refreshControls();
  }
  if (ui.cachedModels.open) showCachedModels();
  if (state.loadedModel) ui.message.focus();
}

/** Chat, or plain completion for a model without a chat template: said on the page, and in the message box. */
function showMode(chat) {
  if (chat !== state.chat) newChat(); // a conversation cannot go on as continuations, nor the other way
  state.chat = chat;
  ui.modeInfo.hidden = chat;
  ui.modeInfo.textContent = chat ? "" : `${state.loadedModel} is a base model (it has no chat template): it does `
    + "not chat, it continues the text you write. Each message is continued on its own; the system prompt is unused.";
  ui.message.placeholder = chat ? "Ask something (Enter sends, Shift+Enter adds a line)"
    : "Text for the model to continue (Enter sends, Shift+Enter adds a line)";
  refreshControls();
}

// The bundles cached in this browser, each with a Delete button; shown while "Cached models" is open.
async function showCachedModels() {
  state.engine ??= await createPageEngine();
  const engine = state.engine;
  const items = (await engine.cachedBundles()).map((bundle) => {
    const item = document.createElement("li");
    const name = bundle.model ? `${bundle.model} · ${bundle.quantization}` : bundle.bundleId;
    item.textContent = `${name} · ${formatMegabytes(bundle.bytes)}${bundle.bundleId === engine.bundle?.bundleId ? " · loaded" : ""} `;
    const remove = document.createElement("button");
    remove.type = "button";
    remove.textContent = "Delete";
    remove.setAttribute("aria-label", `Delete ${name} from this browser's cache`);
    remove.addEventListener("click", async () => {
      await engine.deleteCachedBundle(bundle.bundleId);
      await showCachedModels();
    });
    item.append(remove);
    return item;
  });
  ui.cachedList.replaceChildren(...items);
  ui.cachedEmpty.hidden = items.length > 0;
}

function appendMessage(role) {
  ui.transcript.querySelector(".transcript-empty")?.remove();
  const article = document.createElement("article");
  article.className = `message message-${role}`;
  const heading = document.createElement("h2");
  heading.className = "message-role";
  heading.textContent = { user: "You", assistant: "Assistant", continuation: "Continuation" }[role];
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

/** The streamed request for the conversation so far, or (a base model) for `text` alone. */
function generationRequest(text, signal) {
  const systemPrompt = ui.systemPrompt.value.trim();
  const messages = () => [...(systemPrompt ? [{ role: "system", content: systemPrompt }] : []), ...state.history];
  const request = {
    ...(state.chat ? { messages: messages() } : { prompt: text }),
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
  const { chat } = state;
  if (chat) history.push({ role: "user", content: text });
  appendMessage("user").body.textContent = text;
  const answer = appendMessage(chat ? "assistant" : "continuation");
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
    const request = generationRequest(text, controller.signal);
    const stream = await (chat ? state.engine.chat.completions : state.engine.completions).create(request);
    for await (const chunk of stream) {
      const delta = chat ? chunk.choices[0]?.delta?.content : chunk.choices[0]?.text;
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
    if (chat) history.pop();
    answer.article.classList.add("message-failed");
    stats.textContent = chatFailedMessage(failure);
    stats.setAttribute("role", "alert");
    if (!ui.message.value) ui.message.value = text;
  } else {
    if (content && chat) history.push({ role: "assistant", content });
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
ui.cachedModels.addEventListener("toggle", () => {
  if (ui.cachedModels.open) showCachedModels();
});

refreshControls();
findWebGPUProblem().then((problem) => {
  if (!problem) return;
  ui.deviceInfoText.textContent = cpuFallbackText();
  ui.deviceAdvice.textContent = webgpuProblemText(problem);
  ui.deviceInfo.hidden = false;
});
