// tvmjs (@mlc-ai/web-runtime 0.27) reads the library's memory as if addresses stopped at 2 GB: its loads index
// with signed shifts (`ptr >> 2`), and pointers returned by the library's i32 exports (TVMWasmAllocSpace, the
// call stack tvmjs writes every call's arguments to) reach JavaScript as negative numbers above 2^31. The CPU
// library's memory grows to 4 GB, and a 3B model's 2.6 GB of weights push every later allocation past 2 GB: the
// load failed with "RangeError: offset is out of bounds" in the first call after the weights (issue 18). These
// replacements read any wasm32 address, as unsigned (`>>> 0`).

/** The address methods of tvmjs's Memory class that take an address first and do not shift it themselves. */
const ADDRESS_FIRST = ["storeRawBytes", "loadRawBytes", "viewRawBytes", "loadCString", "loadSmallStr",
  "loadSmallBytes", "loadByteArrayAsString", "loadByteArrayAsBytes", "loadTypeInfoTypeKey", "loadObjectTypeIndex"];

/** Typed-array loads by element size, as tvmjs's loadU8 ... loadF64 do them, with unsigned shifts. */
const SCALAR_LOADS = {
  loadU8: (memory, ptr) => memory.viewU8[ptr >>> 0],
  loadU16: (memory, ptr) => memory.viewU16[ptr >>> 1],
  loadU32: (memory, ptr) => memory.viewU32[ptr >>> 2],
  loadI32: (memory, ptr) => memory.viewI32[ptr >>> 2],
  loadI64: (memory, ptr) => memory.viewI32[ptr >>> 2], // tvmjs's own truncation to the low 32 bits
  loadU64: (memory, ptr) => {
    const value = memory.viewU32[ptr >>> 2] + memory.viewU32[(ptr >>> 2) + 1] * 0x100000000;
    if (!Number.isSafeInteger(value)) throw new Error("Cannot represent uint64 value as a JavaScript number");
    return value;
  },
  loadF32: (memory, ptr) => memory.viewF32[ptr >>> 2],
  loadF64: (memory, ptr) => memory.viewF64[ptr >>> 3],
};

const patched = new WeakSet();

/** Make the Memory class of `tvm` (a tvmjs Instance) address all 4 GB of a wasm32 memory; once per class. */
export function addressWholeMemory(tvm) {
  const memoryClass = Object.getPrototypeOf(tvm.memory);
  if (patched.has(memoryClass)) return;
  for (const [name, load] of Object.entries(SCALAR_LOADS)) {
    if (typeof memoryClass[name] !== "function") throw new Error(`tvmjs's Memory has no ${name}: check wasm32-addresses.js`);
    memoryClass[name] = function (ptr) {
      if (this.buffer !== this.memory.buffer) this.updateViews();
      return load(this, ptr);
    };
  }
  for (const name of ADDRESS_FIRST) {
    const original = memoryClass[name];
    if (typeof original !== "function") throw new Error(`tvmjs's Memory has no ${name}: check wasm32-addresses.js`);
    memoryClass[name] = function (ptr, ...rest) {
      return original.call(this, ptr >>> 0, ...rest);
    };
  }
  patched.add(memoryClass);
}
