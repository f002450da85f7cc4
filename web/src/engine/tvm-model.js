// A bundle's model library driven through tvmjs: the VM, the weights on the device, and one sequence in TVM's
// paged KV cache (embed -> prefill in chunks -> decode), as compile/native.py drives the native build. The
// device is WebGPU (the *-webgpu.wasm library) or the CPU (the *-wasm32.wasm library, WebAssembly SIMD on
// threads: see model-library.js).
import * as tvmjs from "@mlc-ai/web-runtime";
import { BundleError, WebGPUUnavailableError } from "./errors.js";
import { instantiateModelLibrary } from "./model-library.js";

const PAGE_SIZE = 16; // tokens per KV cache page, as WebLLM uses
const SEQUENCE_ID = 0; // one conversation at a time

/** A WebGPU device, or WebGPUUnavailableError saying why not (tvmjs checks the limits it needs).
 * `adapterInfo.isFallbackAdapter` is true for a software implementation (SwiftShader). */
export async function requestWebGPU() {
  if (typeof navigator === "undefined" || !navigator.gpu) {
    throw new WebGPUUnavailableError("WebGPU is not available in this browser (navigator.gpu is undefined): use a "
      + "browser with WebGPU enabled, on a secure context (https:// or http://localhost)");
  }
  try {
    return await tvmjs.detectGPUDevice();
  } catch (error) {
    throw new WebGPUUnavailableError(`No usable WebGPU adapter: ${error.message}`);
  }
}

const messageTurn = new MessageChannel();

/** Resolves in a later task, after the messages already queued for this worker have been handled. */
function handlePendingMessages() {
  return new Promise((resolve) => {
    messageTurn.port1.onmessage = () => resolve();
    messageTurn.port2.postMessage(null);
  });
}

/** @implements {import("./generation.js").LanguageModel} */
export class TVMModel {
  /**
   * @param {{device: GPUDevice} | null} gpu from requestWebGPU(), or null to run on the CPU
   * @param {Uint8Array} library the model library's bytes for that device (a view of its whole ArrayBuffer)
   * @param {any} tensorCache the parsed tensor-cache.json
   * @param {(name: string) => Promise<Uint8Array>} readShard verified bytes of a shard
   * @param {() => void} onCompile called before the WebGPU pipelines are compiled
   * @param {number} threads how many threads run the CPU library
   */
  static async load(gpu, library, tensorCache, readShard, onCompile, threads) {
    const instance = await instantiateModelLibrary(library, gpu ? "webgpu" : "cpu", threads);
    const tvm = instance.tvm;
    try {
      if (gpu) tvm.initWebGPU(gpu.device);
      const device = gpu ? tvm.webgpu() : tvm.cpu();
      tvm.beginScope();
      const vm = tvm.detachFromCurrentScope(tvm.createVirtualMachine(device));
      const metadata = JSON.parse(vm.getFunction("_metadata")().toString());
      if (gpu) {
        checkLimits(gpu.device, metadata, tensorCache);
        onCompile();
        await tvm.asyncLoadWebGPUPipelines(vm.getInternalModule());
      }
      const params = tvm.detachFromCurrentScope(await uploadParams(tvm, device, metadata, tensorCache, readShard));
      tvm.endScope();
      return new TVMModel(instance, device, vm, params, metadata);
    } catch (error) {
      instance.dispose();
      throw error;
    }
  }

  constructor(instance, device, vm, params, metadata) {
    this.instance = instance;
    const tvm = this.tvm = instance.tvm;
    this.device = device;
    this.vm = vm;
    this.params = params;
    this.metadata = metadata;
    this.prefillChunkSize = metadata.prefill_chunk_size;
    this.contextWindowSize = metadata.context_window_size;
    const keep = (f) => tvm.detachFromCurrentScope(f);
    this.functions = tvm.withNewScope(() => ({
      embed: keep(vm.getFunction("embed")),
      prefill: keep(vm.getFunction("prefill")),
      decode: keep(vm.getFunction("decode")),
      createKVCache: keep(vm.getFunction("create_tir_paged_kv_cache")),
      addSequence: keep(tvm.getGlobalFunc("vm.builtin.kv_state_add_sequence")),
      popn: keep(tvm.getGlobalFunc("vm.builtin.kv_state_popn")),
      beginForward: keep(tvm.getGlobalFunc("vm.builtin.kv_state_begin_forward")),
      endForward: keep(tvm.getGlobalFunc("vm.builtin.kv_state_end_forward")),
    }));
    this.resetKVCache();
  }

  /** Forget the conversation: a fresh KV cache holding one empty sequence. */
  resetKVCache() {
    this.kvCache?.dispose();
    const tvm = this.tvm;
    tvm.beginScope();
    this.kvCache = tvm.detachFromCurrentScope(this.functions.createKVCache(
      tvm.makeShapeTuple([1]), tvm.makeShapeTuple([this.contextWindowSize]),
      tvm.makeShapeTuple([this.prefillChunkSize]), tvm.makeShapeTuple([PAGE_SIZE]), tvm.makeShapeTuple([0])));
    this.functions.addSequence(this.kvCache, new tvmjs.Scalar(SEQUENCE_ID, "int64"));
    tvm.endScope();
    /** @type {number[]} the token ids the KV cache holds */
    this.tokens = [];
  }

  /** Keep only the first `length` tokens of the sequence. @param {number} length */
  truncate(length) {
    if (length >= this.tokens.length) return;
    this.tvm.withNewScope(() => this.functions.popn(this.kvCache, new tvmjs.Scalar(SEQUENCE_ID, "int64"),
      new tvmjs.Scalar(this.tokens.length - length, "int64")));
    this.tokens.length = length;
  }

  /** @param {number[]} ids at most prefillChunkSize tokens */
  prefill(ids) {
    return this.forward(this.functions.prefill, ids);
  }

  /** @param {number} id */
  decode(id) {
    return this.forward(this.functions.decode, [id]);
  }

  /** Run one step and return the logits after the last token (copied to the CPU). */
  async forward(step, ids) {
    const tvm = this.tvm;
    tvm.beginScope();
    try {
      const input = tvm.empty([ids.length], "int32", this.device).copyFrom(Int32Array.from(ids));
      const embeds = this.functions.embed(input, this.params);
      this.functions.beginForward(this.kvCache, tvm.makeShapeTuple([SEQUENCE_ID]), tvm.makeShapeTuple([ids.length]));
      const output = step(embeds.view([1, ids.length, embeds.shape[1]]), this.kvCache, this.params);
      this.functions.endForward(this.kvCache);
      const logits = output.get(0);
      const host = tvm.empty(logits.shape, "float32", tvm.cpu()).copyFrom(logits);
      await this.device.sync();
      // On the CPU nothing above waits for anything: let the worker handle its messages (an abort) now.
      if (this.device.deviceType === tvm.cpu().deviceType) await handlePendingMessages();
      this.tokens.push(...ids);
      return /** @type {Float32Array} */ (host.toArray()); // [1, 1, vocab]: the last token's logits
    } catch (error) {
      this.resetKVCache(); // a failed step leaves the cache in an unknown state
      throw error;
    } finally {
      tvm.endScope();
    }
  }

  dispose() {
    this.kvCache.dispose();
    this.params.dispose();
    for (const f of Object.values(this.functions)) f.dispose();
    this.vm.dispose();
    this.instance.dispose();
  }
}

/** Every tensor of the tensor cache uploaded to the device, shard by shard; the VM's params in metadata order. */
async function uploadParams(tvm, device, metadata, tensorCache, readShard) {
  const byName = new Map();
  try {
    for (const shard of tensorCache.records) {
      const bytes = await readShard(shard.dataPath);
      for (const record of shard.records) {
        if (record.format !== "raw") {
          throw new BundleError(`tensor-cache.json: ${record.name} has format ${record.format}, only raw is supported`,
            "bundle_invalid");
        }
        const tensor = tvm.detachFromCurrentScope(tvm.empty(record.shape, record.dtype, device));
        byName.set(record.name, tensor);
        tensor.copyFromRawBytes(bytes.subarray(record.byteOffset, record.byteOffset + record.nbytes));
      }
    }
    await device.sync();
    const missing = metadata.params.map((p) => p.name).filter((name) => !byName.has(name));
    if (missing.length) {
      throw new BundleError(`the weights lack ${missing.length} parameters the model library needs (${missing[0]}, ...)`,
        "bundle_invalid");
    }
    return tvm.makeTVMArray(metadata.params.map((p) => byName.get(p.name)));
  } finally {
    for (const tensor of byName.values()) tensor.dispose(); // the array holds its own references
  }
}

/** The adapter must bind the largest weight as one storage buffer. */
function checkLimits(device, metadata, tensorCache) {
  const largest = Math.max(...tensorCache.records.flatMap((shard) => shard.records.map((r) => r.nbytes)));
  const limit = Math.min(device.limits.maxStorageBufferBindingSize, device.limits.maxBufferSize);
  if (largest > limit) {
    throw new WebGPUUnavailableError(`This GPU's WebGPU limits are too small for ${metadata.model_type}: `
      + `the largest weight needs ${largest} bytes in one buffer, the device allows ${limit}`);
  }
}
