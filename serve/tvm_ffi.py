"""TVM's FFI C ABI (tvm/ffi/c_api.h) spoken to a library in the sandbox, as tvmjs speaks it in the tab: packed
arguments written into the library's memory, `TVMFFIFunctionCall`, the result read back. Only what serving a
model needs: ints, floats, strings, devices and objects in; ints, strings and objects out.

The wasm32 layouts are tvmjs's (and pinned by tests/test_serve_sandbox.py): a packed value (TVMFFIAny) is 16
bytes (type index i32, a u32 that is a small string's length, an 8-byte value); an object's header is 24 bytes,
after which a Tensor's DLTensor and a String's {data, size} begin.
"""
import struct

import numpy as np

from .sandbox import LibrarySandbox, SandboxError

# type indices (tvm/ffi/c_api.h)
NONE, INT, BOOL, FLOAT, OPAQUE_PTR, DATATYPE, DEVICE, DLTENSOR_PTR, RAW_STR = range(9)
SMALL_STR = 11
OBJECT_BEGIN, STR = 64, 65
ANY_BYTES = 16
OBJECT_HEADER_BYTES = 24
CPU = 1
SCRATCH_BYTES = 1 << 16


class Obj:
    """A reference to a TVM object in the library, released by TVMFFI.free()."""

    __slots__ = ("handle", "type_index")

    def __init__(self, handle: int, type_index: int):
        self.handle, self.type_index = handle, type_index


class Device(tuple):
    """A DLDevice argument: (device type, device id)."""


CPU_DEVICE = Device((CPU, 0))


class TVMFFI:
    def __init__(self, sandbox: LibrarySandbox):
        self.sandbox = sandbox
        self.scratch = sandbox.call("TVMWasmAllocSpace", SCRATCH_BYTES)
        self._globals: dict[str, int] = {}

    def _check(self, code: int) -> None:
        if code != 0:
            pointer = self.sandbox.call("TVMFFIWasmGetLastError")
            message = bytearray()
            while (byte := self.sandbox.read(pointer + len(message), 1)) != b"\0" and len(message) < 4096:
                message += byte
            raise SandboxError(message.decode(errors="replace"))

    def global_function(self, name: str) -> int:
        if name not in self._globals:
            raw = name.encode()
            base = self.scratch
            self.sandbox.write(base, struct.pack("<IIII", base + 16, len(raw), 0, 0) + raw)  # TVMFFIByteArray, handle
            self._check(self.sandbox.call("TVMFFIFunctionGetGlobal", base, base + 8))
            handle = int.from_bytes(self.sandbox.read(base + 8, 4), "little")
            if handle == 0:
                raise SandboxError(f"the model library has no global function {name}")
            self._globals[name] = handle
        return self._globals[name]

    def call(self, function, *args):
        """Call a function (an Obj, or a global function's handle) with int, float, bool, str, Device, Obj or None."""
        handle = function.handle if isinstance(function, Obj) else function
        base = self.scratch
        count = len(args)
        strings_at = base + (count + 1) * ANY_BYTES
        packed, strings = bytearray(), bytearray()
        for value in args:
            if isinstance(value, bool):
                packed += struct.pack("<iIq", BOOL, 0, int(value))
            elif isinstance(value, int):
                packed += struct.pack("<iIq", INT, 0, value)
            elif isinstance(value, float):
                packed += struct.pack("<iId", FLOAT, 0, value)
            elif isinstance(value, Obj):
                packed += struct.pack("<iIII", value.type_index, 0, value.handle, 0)
            elif isinstance(value, str):
                raw = value.encode() + b"\0"
                packed += struct.pack("<iIII", RAW_STR, 0, strings_at + len(strings), 0)
                strings += raw + bytes(-len(raw) % 8)
            elif isinstance(value, Device):
                packed += struct.pack("<iIii", DEVICE, 0, *value)
            elif value is None:
                packed += struct.pack("<iIq", NONE, 0, 0)
            else:
                raise TypeError(f"cannot pass {type(value).__name__} to the model library")
        result_at = base + count * ANY_BYTES
        packed += struct.pack("<iIq", NONE, 0, 0)
        if len(packed) + len(strings) > SCRATCH_BYTES:
            raise ValueError("the arguments do not fit the call's scratch space")
        self.sandbox.write(base, bytes(packed + strings))
        self._check(self.sandbox.call("TVMFFIFunctionCall", handle, base, count, result_at))
        return self._result(result_at)

    def _result(self, at: int):
        type_index, small_length, value = struct.unpack("<iIq", self.sandbox.read(at, ANY_BYTES))
        if type_index == NONE:
            return None
        if type_index in (INT, BOOL):
            return value
        if type_index == FLOAT:
            return struct.unpack("<d", struct.pack("<q", value))[0]
        if type_index == SMALL_STR:
            return self.sandbox.read(at + 8, small_length).decode()
        if type_index == STR:
            handle = value & 0xFFFFFFFF
            pointer, size = struct.unpack("<II", self.sandbox.read(handle + OBJECT_HEADER_BYTES, 8))
            text = self.sandbox.read(pointer, size).decode()
            self.sandbox.call("TVMFFIObjectDecRef", handle)
            return text
        if type_index >= OBJECT_BEGIN:
            return Obj(value & 0xFFFFFFFF, type_index)
        raise SandboxError(f"the model library returned a value of type index {type_index}")

    def free(self, *objects) -> None:
        for value in objects:
            if isinstance(value, Obj) and value.handle:
                self._check(self.sandbox.call("TVMFFIObjectDecRef", value.handle))
                value.handle = 0

    # helpers in the shape of tvmjs's
    def call_global(self, name: str, *args):
        return self.call(self.global_function(name), *args)

    def module_function(self, module: Obj, name: str) -> Obj:
        function = self.call_global("ffi.ModuleGetFunction", module, name, True)
        if function is None:
            raise SandboxError(f"the model library has no function {name}")
        return function

    def shape(self, dims) -> Obj:
        return self.call_global("ffi.Shape", *[int(d) for d in dims])

    def empty(self, dims, dtype: str) -> Obj:
        shape = self.shape(dims)
        try:
            return self.call_global("runtime.TVMTensorAllocWithScope", shape, dtype, CPU_DEVICE, None)
        finally:
            self.free(shape)

    def tensor_data(self, tensor: Obj) -> tuple[int, tuple[int, ...]]:
        """(address of a CPU tensor's first element in the library's memory, its shape)."""
        dl = tensor.handle + OBJECT_HEADER_BYTES
        data, _device_type, _device_id, ndim = struct.unpack("<IiiI", self.sandbox.read(dl, 16))
        shape_pointer, = struct.unpack("<I", self.sandbox.read(dl + 20, 4))
        byte_offset, = struct.unpack("<Q", self.sandbox.read(dl + 32, 8))
        shape = struct.unpack(f"<{ndim}q", self.sandbox.read(shape_pointer, 8 * ndim))
        return data + byte_offset, shape

    def write_tensor(self, tensor: Obj, data: bytes) -> None:
        address, _ = self.tensor_data(tensor)
        self.sandbox.write(address, data)

    def read_float32(self, tensor: Obj) -> np.ndarray:
        address, shape = self.tensor_data(tensor)
        count = int(np.prod(shape))
        return np.frombuffer(self.sandbox.read(address, 4 * count), dtype="<f4").reshape(shape)
