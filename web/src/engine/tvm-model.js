// A bundle's model library driven through tvmjs: the VM, the weights on the device, and one sequence in TVM's
// paged KV cache (embed -> prefill in chunks -> decode), as compile/native.py drives the native build. The
// device is WebGPU (the *-webgpu.wasm library) or the CPU (the *-wasm32.wasm library, WebAssembly SIMD on
// threads: see model-library.js).
import * as tvmjs from "@mlc-ai/web-runtime";
import { BundleError, WebGPUUnavailableError } from "./errors.js";
import { instantiateModelLibrary } from "./model-library.js";

const PAGE_SIZE = 16; // tokens per KV cache page, as WebLLM uses
const SEQUENCE_ID = 0; // one conversation at a time
// The CPU library prefills at most this many tokens at a time. Its buffers are planned for the compiled chunk
// (1024 tokens), but only the part a chunk uses is ever touched. Measured in Chromium, 1 thread, in chunks of
// 128 / 256 / 512 / 1024 tokens: the 0.5B model's 1281-token prompt raised the tab's memory by 42 / 58 / 96 / 176
// MB (its KV cache's 32 MB included) at 26.1 / 26.5 / 27.1 / 24.6 tokens/s; SmolLM2-135M's 2031-token prompt by
// 88 / 98 / 109 / 137 MB (KV cache 93 MB) at 65.0 / 68.5 / 70.5 / 71.1 tokens/s.
const CPU_PREFILL_CHUNK = 256;

/** A WebGPU device, or WebGPUUnavailableError saying why not. The device gets the largest buffers the adapter
 * allows (WebGPU's defaults are 256 MB per buffer and 128 MB per binding, and tvmjs's detectGPUDevice asks for at
 * most 1 GB: a weight of a 1B+ model can need more), and the limits tvmjs's kernels need.
 * `adapterInfo.isFallbackAdapter` is true for a software implementation (SwiftShader). */
export async function requestWebGPU() {
  if (typeof navigator === "undefined" || !navigator.gpu) {
    throw new WebGPUUnavailableError("WebGPU is not available in this browser (navigator.gpu is undefined): use a "
      + "browser with WebGPU enabled, on a secure context (https:// or http://localhost)");
  }
  const adapter = await navigator.gpu.requestAdapter({ powerPreference: "high-performance" });
  if (!adapter) {
    throw new WebGPUUnavailableError("No usable WebGPU adapter: the browser found no GPU it can use (no GPU, or "
      + "its driver is blocked)");
  }
  const { limits } = adapter;
  const requiredLimits = {
    maxBufferSize: limits.maxBufferSize,
    maxStorageBufferBindingSize: limits.maxStorageBufferBindingSize,
    maxComputeWorkgroupStorageSize: 32 << 10, // as tvmjs's detectGPUDevice requires
    maxStorageBuffersPerShaderStage: 10,
  };
  const invocations = [1024, 512, 256].find((n) => n <= limits.maxComputeInvocationsPerWorkgroup);
  if (invocations) requiredLimits.maxComputeInvocationsPerWorkgroup = invocations;
  const requiredFeatures = ["shader-f16", "subgroups"].filter((feature) => adapter.features.has(feature));
  try {
    return { adapter, adapterInfo: adapter.info, device: await adapter.requestDevice({ requiredLimits, requiredFeatures }) };
  } catch (error) {
    throw new WebGPUUnavailableError(`No usable WebGPU adapter: ${error.message}`);
  }
}

/**
 * Fail before anything is downloaded when the device cannot hold the bundle's largest weight in one buffer
 * bound as storage. @param {GPUDevice} device @param {any} tensorCache the parsed tensor-cache.json
 * @param {string} model
 */
export function checkWebGPULimits(device, tensorCache, model) {
  const largest = tensorCache.records.flatMap((shard) => shard.records)
    .reduce((a, b) => (b.nbytes > a.nbytes ? b : a));
  const { maxStorageBufferBindingSize, maxBufferSize } = device.limits;
  const limit = Math.min(maxStorageBufferBindingSize, maxBufferSize);
  if (largest.nbytes > limit) {
    throw new WebGPUUnavailableError(`This GPU's WebGPU limits are too small for ${model}: its largest weight `
      + `(${largest.name}) needs one buffer of ${largest.nbytes} bytes, and the device allows ${limit} `
      + `(maxStorageBufferBindingSize ${maxStorageBufferBindingSize}, maxBufferSize ${maxBufferSize}). `
      + 'Load it on the CPU (device: "wasm") or use a smaller model');
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
   * @param {(name: string, sink: import("./bundle-store.js").Sink) => Promise<void>} streamShard
   *   passes a shard's bytes to `sink` and resolves once they are verified (BundleStore.stream)
   * @param {() => void} onCompile called before the WebGPU pipelines are compiled
   * @param {number} threads how many threads run the CPU library
   */
  static async load(gpu, library, tensorCache, streamShard, onCompile, threads) {
    const instance = await instantiateModelLibrary(library, gpu ? "webgpu" : "cpu", threads);
    const tvm = instance.tvm;
    try {
      if (gpu) tvm.initWebGPU(gpu.device);
      const device = gpu ? tvm.webgpu() : tvm.cpu();
      tvm.beginScope();
      const vm = tvm.detachFromCurrentScope(tvm.createVirtualMachine(device));
      const metadata = JSON.parse(vm.getFunction("_metadata")().toString());
      if (gpu) {
        onCompile();
        await tvm.asyncLoadWebGPUPipelines(vm.getInternalModule());
      }
      const params = tvm.detachFromCurrentScope(await uploadParams(tvm, device, metadata, tensorCache, streamShard));
      tvm.endScope();
      const prefillChunkSize = gpu ? metadata.prefill_chunk_size : Math.min(CPU_PREFILL_CHUNK, metadata.prefill_chunk_size);
      return new TVMModel(instance, device, vm, params, metadata, prefillChunkSize);
    } catch (error) {
      instance.dispose();
      throw error;
    }
  }

  constructor(instance, device, vm, params, metadata, prefillChunkSize) {
    this.instance = instance;
    const tvm = this.tvm = instance.tvm;
    this.device = device;
    this.vm = vm;
    this.params = params;
    this.metadata = metadata;
    this.prefillChunkSize = prefillChunkSize;
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

/**
 * Every tensor of the tensor cache written on the device, shard by shard, as the shard's bytes stream in (no
 * shard is ever held whole: see BundleStore.stream); the VM's params in metadata order. On the CPU a store that
 * reads files (OPFS) reads each tensor's bytes straight into its place in the library's memory (Sink.place).
 */
async function uploadParams(tvm, device, metadata, tensorCache, streamShard) {
  const byName = new Map();
  const onCpu = device.deviceType === tvm.cpu().deviceType;
  try {
    for (const shard of tensorCache.records) {
      const tensors = shard.records.map((record) => {
        if (record.format !== "raw") {
          throw new BundleError(`tensor-cache.json: ${record.name} has format ${record.format}, only raw is supported`,
            "bundle_invalid");
        }
        const tensor = tvm.detachFromCurrentScope(tvm.empty(record.shape, record.dtype, device));
        byName.set(record.name, tensor);
        return { record, tensor };
      });
      await streamShard(shard.dataPath, {
        place: onCpu ? (offset, length) => {
          const found = tensors.find(({ record }) => offset >= record.byteOffset && offset < record.byteOffset + record.nbytes);
          if (!found) return null;
          const at = offset - found.record.byteOffset;
          return cpuBytes(tvm, found.tensor, at, Math.min(length, found.record.nbytes - at));
        } : undefined,
        write: (bytes, offset) => {
          const end = offset + bytes.length;
          for (const { record, tensor } of tensors) {
            const from = Math.max(offset, record.byteOffset);
            const to = Math.min(end, record.byteOffset + record.nbytes);
            if (from < to) writeTensor(tvm, tensor, from - record.byteOffset, bytes.subarray(from - offset, to - offset));
          }
        },
      });
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

/** `length` bytes of a CPU tensor's storage from byte `at`: a view of the library's memory. */
function cpuBytes(tvm, tensor, at, length) {
  return new Uint8Array(tvm.memory.memory.buffer, tensor.getCPUDataAddress() + at, length);
}

/** Write `bytes` into a tensor's storage at byte `at`: straight into the CPU library's memory, or a WebGPU queue
 * write (4-byte aligned: the pieces BundleStore.stream gives are). tvmjs's copyFromRawBytes takes whole tensors
 * only, and on the CPU passes them through a temporary copy in the library's heap. */
function writeTensor(tvm, tensor, at, bytes) {
  if (tensor.device.deviceType === tvm.cpu().deviceType) {
    cpuBytes(tvm, tensor, at, bytes.length).set(bytes);
  } else {
    tvm.lib.webGPUContext.copyRawBytesToBuffer(bytes, tensor.getDataPtr(), tensor.byteOffset + at, bytes.length);
  }
}
