// The engine's real worker (/static/worker.js) in a browser without OPFS (as some private modes are): the engine
// keeps bundles in the Cache API instead.
import "/static/worker.js";

delete StorageManager.prototype.getDirectory;
