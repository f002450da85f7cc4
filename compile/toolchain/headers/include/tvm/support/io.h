/*
 * tabllm (written from scratch; the apache-tvm wheel does not ship this header): minimal binary stream interface used by
 * the TVM runtime sources that ship in the apache-tvm wheel but whose
 * tvm/support headers are not shipped.
 *
 * Interface contract expected by the runtime sources:
 *  - tvm::support::Stream with virtual size_t Read(void*, size_t) / size_t Write(const void*, size_t)
 *  - typed helpers Write(const T&), Read(T*), WriteArray, ReadArray that dispatch to
 *    tvm::support::Serializer<T> (specialised in serializer.h and in runtime headers).
 */
#ifndef TVM_SUPPORT_IO_H_
#define TVM_SUPPORT_IO_H_

#include <cstddef>
#include <cstdint>

namespace tvm {
namespace support {

class Stream;

/*! Serializer<T>: specialise with `enabled`, Write(Stream*, const T&), Read(Stream*, T*). */
template <typename T, typename Enable = void>
struct Serializer {
  static constexpr bool enabled = false;
};

class Stream {
 public:
  virtual ~Stream() {}
  virtual size_t Read(void* ptr, size_t size) = 0;
  virtual size_t Write(const void* ptr, size_t size) = 0;

  template <typename T>
  void Write(const T& value) {
    static_assert(Serializer<T>::enabled, "tvm::support::Serializer<T> is not specialised for T");
    Serializer<T>::Write(this, value);
  }

  template <typename T>
  bool Read(T* out) {
    static_assert(Serializer<T>::enabled, "tvm::support::Serializer<T> is not specialised for T");
    return Serializer<T>::Read(this, out);
  }

  template <typename T>
  void WriteArray(const T* data, size_t n) {
    for (size_t i = 0; i < n; ++i) this->Write<T>(data[i]);
  }

  template <typename T>
  bool ReadArray(T* data, size_t n) {
    for (size_t i = 0; i < n; ++i) {
      if (!this->Read<T>(data + i)) return false;
    }
    return true;
  }
};

}  // namespace support
}  // namespace tvm

#endif  // TVM_SUPPORT_IO_H_
