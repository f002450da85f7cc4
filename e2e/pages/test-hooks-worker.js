// The engine's real worker (/static/worker.js) with two test hooks, posted as plain strings:
//   "crash"        an uncaught error, as a worker bug or running out of memory gives (worker.onerror on the page)
//   "lose-device"  the GPU device's `lost` promise resolves as on a GPU reset or driver crash
import "/static/worker.js";

let loseDevice;
const lost = new Promise((resolve) => (loseDevice = resolve));
if (self.GPUDevice) Object.defineProperty(GPUDevice.prototype, "lost", { get: () => lost, configurable: true });

self.addEventListener("message", ({ data }) => {
  if (data === "crash") setTimeout(() => { throw new Error("simulated worker crash"); });
  if (data === "lose-device") loseDevice({ reason: "unknown", message: "simulated GPU reset" });
});
