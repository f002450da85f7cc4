// The Python page: Pyodide (served by this server under /pyodide/) runs a code cell whose Python reaches the
// engine loaded in this tab through tabllm_browser (`client = await tabllm.connect()`). Nothing leaves the machine.
import "./chat.css";
import "./python.css";
import { bundleLoaderUi, createPageEngine, loadPickedBundle, pickedModelName } from "./bundle-loader.js";
import { loadFailedMessage } from "./errors.js";

// Pyodide's loader, with its runtime, lock and wheels next to it (browser/build.py); imported at run time so it
// stays its own file, where Pyodide expects its other files.
const PYODIDE_URL = new URL("/pyodide/pyodide.mjs", location.href).href;

const $ = (id) => document.getElementById(id);
const ui = {
  ...bundleLoaderUi(),
  notice: $("notice"),
  pythonStatus: $("python-status"),
  code: $("code"),
  runButton: $("run-button"),
  output: $("output"),
};
const state = { loading: false, running: false, python: null };

function refreshControls() {
  const hasBundles = ui.picker.value !== "";
  ui.loadButton.disabled = state.loading || !hasBundles;
  ui.picker.disabled = state.loading || !hasBundles;
  ui.runButton.disabled = !state.python || state.running;
}

function write(text, kind = "stdout") {
  const span = document.createElement("span");
  span.className = `output-${kind}`;
  span.textContent = text.endsWith("\n") ? text : `${text}\n`;
  ui.output.append(span);
  ui.output.scrollTop = ui.output.scrollHeight;
}

// The engine exists from the start, so tabllm.connect() can say "load a model" rather than "no engine".
const engineReady = createPageEngine().then((engine) => (globalThis.tabllmEngine = engine));

async function startPython() {
  const started = performance.now();
  const { loadPyodide } = await import(PYODIDE_URL);
  // Its lock (ours, browser/build.py) names the wheels beside it: tabllm-browser, and openai for `import openai`.
  const pyodide = await loadPyodide({ indexURL: new URL("/pyodide/", location.href).href, packages: ["tabllm-browser"] });
  pyodide.setStdout({ batched: (text) => write(text) });
  pyodide.setStderr({ batched: (text) => write(text, "stderr") });
  const version = pyodide.runPython("import sys, tabllm_browser as tabllm; sys.version.split()[0]");
  const seconds = ((performance.now() - started) / 1000).toFixed(1);
  ui.pythonStatus.textContent = `Python ${version} (Pyodide ${pyodide.version}) ready in ${seconds} s; ` +
    "tabllm is imported, and import openai works.";
  return pyodide;
}

// A failing cell's traceback starts in Pyodide's own code runner: show it from the cell's first frame on.
function cellTraceback(message) {
  const lines = message.split("\n");
  const cell = lines.findIndex((line) => line.includes('File "<exec>"'));
  return cell > 1 ? [lines[0], ...lines.slice(cell)].join("\n") : message;
}

/** Runs a cell (top-level await allowed): its printed output, then the repr of its last expression. */
async function run(code) {
  const pyodide = state.python;
  state.running = true;
  refreshControls();
  try {
    await pyodide.loadPackagesFromImports(code); // `import openai` loads its wheels from this server
    const result = await pyodide.runPythonAsync(code);
    if (result !== undefined) write(pyodide.globals.get("repr")(result));
    result?.destroy?.();
  } catch (error) {
    write(cellTraceback(String(error.message ?? error)), "error");
  } finally {
    state.running = false;
    refreshControls();
  }
}

async function load() {
  const modelName = pickedModelName(ui);
  ui.notice.hidden = true;
  state.loading = true;
  refreshControls();
  try {
    await loadPickedBundle(await engineReady, ui);
  } catch (error) {
    console.error(error);
    ui.notice.textContent = loadFailedMessage(error, modelName);
    ui.notice.hidden = false;
  } finally {
    state.loading = false;
    refreshControls();
  }
}

ui.loadForm.addEventListener("submit", (event) => {
  event.preventDefault();
  if (!state.loading) load();
});
ui.runButton.addEventListener("click", () => run(ui.code.value));
ui.code.addEventListener("keydown", (event) => {
  if (event.key === "Enter" && (event.ctrlKey || event.metaKey) && !ui.runButton.disabled) {
    event.preventDefault();
    run(ui.code.value);
  }
});

refreshControls();
// For pages and tests that drive this one: the Pyodide instance, once it has tabllm_browser.
window.tabllmPython = startPython().then((pyodide) => {
  state.python = pyodide;
  refreshControls();
  return pyodide;
}, (error) => {
  console.error(error);
  ui.pythonStatus.textContent = `Python could not start: ${error.message ?? error}`;
  throw error;
});
