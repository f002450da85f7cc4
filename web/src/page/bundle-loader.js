// The model section of a page (static_server/templates/base.html): the bundle picker, its Load button, the
// progress bar and the status line; loads the picked bundle into an engine, as the chat and Python pages do.
import { formatDevice, formatMegabytes, formatProgress } from "./format.js";

// The engine is its own module in /static (it starts /static/worker.js next to itself); importing it at run
// time keeps it out of the page's bundle and off the network until a model is loaded.
const ENGINE_MODULE_URL = new URL("./engine.js", import.meta.url).href;

export async function createPageEngine() {
  const { createEngine } = await import(ENGINE_MODULE_URL);
  return createEngine();
}

/** The model section's elements, by their ids in model.html, and the page's status line. */
export function bundleLoaderUi() {
  const $ = (id) => document.getElementById(id);
  return {
    status: $("status"),
    loadForm: $("load-form"),
    picker: $("bundle-picker"),
    loadButton: $("load-button"),
    progress: $("load-progress"),
    progressBar: $("load-progress-bar"),
    progressLabel: $("load-progress-label"),
  };
}

/** The name of the picked bundle ("model (quantization)"). */
export function pickedModelName(ui) {
  return ui.picker.selectedOptions[0].dataset.name;
}

function showProgress(ui, { loadedBytes = 0, totalBytes = 0, fraction = 0, text = "" }) {
  ui.progressBar.value = fraction;
  const bytes = formatProgress(loadedBytes, totalBytes, fraction);
  ui.progressLabel.textContent = text ? `${bytes} · ${text}` : bytes;
}

/**
 * Load the picked bundle into `engine`, with the progress bar while it loads and the outcome in the status line.
 * Resolves with the model's name; rejects with the engine's error (the status line then says no model is loaded).
 */
export async function loadPickedBundle(engine, ui) {
  const modelName = pickedModelName(ui);
  ui.status.textContent = `Loading ${modelName}…`;
  ui.progress.hidden = false;
  showProgress(ui, {});
  const started = performance.now();
  let totalBytes = 0;
  try {
    const info = await engine.load(ui.picker.value, {
      onProgress: (progress) => {
        totalBytes = progress.totalBytes || totalBytes;
        showProgress(ui, progress);
      },
    });
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    ui.status.textContent = `Ready: ${modelName} on ${formatDevice(info)}, ${formatMegabytes(totalBytes)} loaded in ${seconds} s`;
    return modelName;
  } catch (error) {
    ui.status.textContent = "No model loaded";
    throw error;
  } finally {
    ui.progress.hidden = true;
  }
}
