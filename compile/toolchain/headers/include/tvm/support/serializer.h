/*
 * tabllm (written from scratch; the apache-tvm wheel does not ship this header): Serializer<T> specialisations.
 *
 * Wire format (must match what libtvm on the Python side writes, little endian):
 *   arithmetic  : raw little-endian bytes
 *   enum        : as its underlying integer type
 *   string      : uint64 byte count, then bytes
 *   vector/Array: uint64 element count, then elements
 *   pair        : first, second
 *   map         : uint64 count, then (key, value) pairs
 *   DLDataType  : uint8 code, uint8 bits, uint16 lanes
 *   DLDevice    : int32 device_type, int32 device_id
 */
#ifndef TVM_SUPPORT_SERIALIZER_H_
#define TVM_SUPPORT_SERIALIZER_H_

#include <dlpack/dlpack.h>
#include <tvm/ffi/container/array.h>
#include <tvm/ffi/container/map.h>
#include <tvm/ffi/endian.h>
#include <tvm/ffi/string.h>
#include <tvm/support/io.h>

#include <cstdint>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

namespace tvm {
namespace support {

namespace shim_detail {
inline bool ReadLength(Stream* s, uint64_t* n);
inline void WriteLength(Stream* s, uint64_t n);
}  // namespace shim_detail

template <typename T>
struct Serializer<T, typename std::enable_if<std::is_arithmetic<T>::value>::type> {
  static constexpr bool enabled = true;
  static void Write(Stream* s, const T& v) {
    T tmp = v;
    if (!TVM_FFI_IO_NO_ENDIAN_SWAP) ffi::ByteSwap(&tmp, sizeof(T), 1);
    s->Write(static_cast<const void*>(&tmp), sizeof(T));
  }
  static bool Read(Stream* s, T* v) {
    if (s->Read(static_cast<void*>(v), sizeof(T)) != sizeof(T)) return false;
    if (!TVM_FFI_IO_NO_ENDIAN_SWAP) ffi::ByteSwap(v, sizeof(T), 1);
    return true;
  }
};

template <typename T>
struct Serializer<T, typename std::enable_if<std::is_enum<T>::value>::type> {
  static constexpr bool enabled = true;
  using Int = typename std::underlying_type<T>::type;
  static void Write(Stream* s, const T& v) { Serializer<Int>::Write(s, static_cast<Int>(v)); }
  static bool Read(Stream* s, T* v) {
    Int i;
    if (!Serializer<Int>::Read(s, &i)) return false;
    *v = static_cast<T>(i);
    return true;
  }
};

namespace shim_detail {
inline bool ReadLength(Stream* s, uint64_t* n) { return Serializer<uint64_t>::Read(s, n); }
inline void WriteLength(Stream* s, uint64_t n) { Serializer<uint64_t>::Write(s, n); }
}  // namespace shim_detail

template <>
struct Serializer<std::string> {
  static constexpr bool enabled = true;
  static void Write(Stream* s, const std::string& v) {
    shim_detail::WriteLength(s, v.size());
    if (!v.empty()) s->Write(static_cast<const void*>(v.data()), v.size());
  }
  static bool Read(Stream* s, std::string* v) {
    uint64_t n;
    if (!shim_detail::ReadLength(s, &n)) return false;
    v->resize(static_cast<size_t>(n));
    if (n == 0) return true;
    return s->Read(static_cast<void*>(&(*v)[0]), v->size()) == v->size();
  }
};

template <>
struct Serializer<ffi::String> {
  static constexpr bool enabled = true;
  static void Write(Stream* s, const ffi::String& v) {
    shim_detail::WriteLength(s, v.size());
    if (v.size() != 0) s->Write(static_cast<const void*>(v.data()), v.size());
  }
  static bool Read(Stream* s, ffi::String* v) {
    std::string tmp;
    if (!Serializer<std::string>::Read(s, &tmp)) return false;
    *v = ffi::String(tmp);
    return true;
  }
};

template <typename T>
struct Serializer<std::vector<T>> {
  static constexpr bool enabled = true;
  static void Write(Stream* s, const std::vector<T>& v) {
    shim_detail::WriteLength(s, v.size());
    for (const T& e : v) Serializer<T>::Write(s, e);
  }
  static bool Read(Stream* s, std::vector<T>* v) {
    uint64_t n;
    if (!shim_detail::ReadLength(s, &n)) return false;
    v->clear();
    v->resize(static_cast<size_t>(n));
    for (uint64_t i = 0; i < n; ++i) {
      if (!Serializer<T>::Read(s, &(*v)[static_cast<size_t>(i)])) return false;
    }
    return true;
  }
};

template <typename A, typename B>
struct Serializer<std::pair<A, B>> {
  static constexpr bool enabled = true;
  static void Write(Stream* s, const std::pair<A, B>& v) {
    Serializer<A>::Write(s, v.first);
    Serializer<B>::Write(s, v.second);
  }
  static bool Read(Stream* s, std::pair<A, B>* v) {
    return Serializer<A>::Read(s, &v->first) && Serializer<B>::Read(s, &v->second);
  }
};

template <typename K, typename V>
struct Serializer<std::unordered_map<K, V>> {
  static constexpr bool enabled = true;
  static void Write(Stream* s, const std::unordered_map<K, V>& m) {
    shim_detail::WriteLength(s, m.size());
    for (const auto& kv : m) {
      Serializer<K>::Write(s, kv.first);
      Serializer<V>::Write(s, kv.second);
    }
  }
  static bool Read(Stream* s, std::unordered_map<K, V>* m) {
    uint64_t n;
    if (!shim_detail::ReadLength(s, &n)) return false;
    m->clear();
    for (uint64_t i = 0; i < n; ++i) {
      K k;
      V v;
      if (!Serializer<K>::Read(s, &k) || !Serializer<V>::Read(s, &v)) return false;
      (*m)[std::move(k)] = std::move(v);
    }
    return true;
  }
};

template <typename T>
struct Serializer<ffi::Array<T>> {
  static constexpr bool enabled = true;
  static void Write(Stream* s, const ffi::Array<T>& a) {
    shim_detail::WriteLength(s, a.size());
    for (size_t i = 0; i < a.size(); ++i) Serializer<T>::Write(s, a[i]);
  }
  static bool Read(Stream* s, ffi::Array<T>* a) {
    uint64_t n;
    if (!shim_detail::ReadLength(s, &n)) return false;
    ffi::Array<T> out;
    for (uint64_t i = 0; i < n; ++i) {
      T v;
      if (!Serializer<T>::Read(s, &v)) return false;
      out.push_back(std::move(v));
    }
    *a = std::move(out);
    return true;
  }
};

template <typename K, typename V>
struct Serializer<ffi::Map<K, V>> {
  static constexpr bool enabled = true;
  static void Write(Stream* s, const ffi::Map<K, V>& m) {
    shim_detail::WriteLength(s, m.size());
    for (const auto& kv : m) {
      Serializer<K>::Write(s, kv.first);
      Serializer<V>::Write(s, kv.second);
    }
  }
  static bool Read(Stream* s, ffi::Map<K, V>* m) {
    uint64_t n;
    if (!shim_detail::ReadLength(s, &n)) return false;
    ffi::Map<K, V> out;
    for (uint64_t i = 0; i < n; ++i) {
      K k;
      V v;
      if (!Serializer<K>::Read(s, &k) || !Serializer<V>::Read(s, &v)) return false;
      out.Set(k, v);
    }
    *m = std::move(out);
    return true;
  }
};

template <>
struct Serializer<DLDataType> {
  static constexpr bool enabled = true;
  static void Write(Stream* s, const DLDataType& t) {
    Serializer<uint8_t>::Write(s, t.code);
    Serializer<uint8_t>::Write(s, t.bits);
    Serializer<uint16_t>::Write(s, t.lanes);
  }
  static bool Read(Stream* s, DLDataType* t) {
    return Serializer<uint8_t>::Read(s, &t->code) && Serializer<uint8_t>::Read(s, &t->bits) &&
           Serializer<uint16_t>::Read(s, &t->lanes);
  }
};

template <>
struct Serializer<DLDevice> {
  static constexpr bool enabled = true;
  static void Write(Stream* s, const DLDevice& d) {
    Serializer<int32_t>::Write(s, static_cast<int32_t>(d.device_type));
    Serializer<int32_t>::Write(s, static_cast<int32_t>(d.device_id));
  }
  static bool Read(Stream* s, DLDevice* d) {
    int32_t type, id;
    if (!Serializer<int32_t>::Read(s, &type) || !Serializer<int32_t>::Read(s, &id)) return false;
    d->device_type = static_cast<DLDeviceType>(type);
    d->device_id = id;
    return true;
  }
};

}  // namespace support
}  // namespace tvm

#endif  // TVM_SUPPORT_SERIALIZER_H_
