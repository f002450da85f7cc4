/*
 * tabllm (written from scratch; the apache-tvm wheel does not ship this header): byte FIFO used by the RPC endpoint.
 * Implemented as a linear buffer with a moving head and lazy compaction.
 */
#ifndef TVM_SUPPORT_RING_BUFFER_H_
#define TVM_SUPPORT_RING_BUFFER_H_

#include <tvm/ffi/error.h>

#include <algorithm>
#include <cstring>
#include <vector>

namespace tvm {
namespace support {

class RingBuffer {
 public:
  RingBuffer() { buf_.resize(4096); }
  size_t bytes_available() const { return size_; }
  size_t capacity() const { return buf_.size(); }

  /*! Make sure at least n bytes can be held (contiguously, after compaction). */
  void Reserve(size_t n) {
    Compact();
    if (buf_.size() < n) buf_.resize(n + n / 4);
  }
  /*! Copy out exactly `size` bytes (must be available). */
  void Read(void* data, size_t size) {
    TVM_FFI_ICHECK_GE(size_, size);
    if (size != 0) std::memcpy(data, &buf_[head_], size);
    Consume(size);
  }
  /*! Hand up to max_nbytes contiguous bytes to fsend(const void*, size_t) -> size_t consumed. */
  template <typename FSend>
  size_t ReadWithCallback(FSend fsend, size_t max_nbytes) {
    size_t n = std::min(max_nbytes, size_);
    TVM_FFI_ICHECK_NE(n, 0U);
    size_t sent = fsend(static_cast<const void*>(&buf_[head_]), n);
    Consume(sent);
    return sent;
  }
  /*! Append all `size` bytes. */
  void Write(const void* data, size_t size) {
    EnsureTail(size);
    if (size != 0) std::memcpy(&buf_[head_ + size_], data, size);
    size_ += size;
  }
  /*! Let frecv(void*, size_t) -> size_t produced fill up to max_nbytes at the tail. */
  template <typename FRecv>
  size_t WriteWithCallback(FRecv frecv, size_t max_nbytes) {
    EnsureTail(max_nbytes);
    size_t got = frecv(static_cast<void*>(&buf_[head_ + size_]), max_nbytes);
    size_ += got;
    return got;
  }

 private:
  void Consume(size_t n) {
    head_ += n;
    size_ -= n;
    if (size_ == 0) head_ = 0;
  }
  void Compact() {
    if (head_ != 0) {
      if (size_ != 0) std::memmove(&buf_[0], &buf_[head_], size_);
      head_ = 0;
    }
  }
  void EnsureTail(size_t extra) {
    if (head_ + size_ + extra <= buf_.size()) return;
    Compact();
    if (size_ + extra > buf_.size()) buf_.resize((size_ + extra) + (size_ + extra) / 4);
  }
  std::vector<char> buf_;
  size_t head_ = 0;
  size_t size_ = 0;
};

}  // namespace support
}  // namespace tvm

#endif  // TVM_SUPPORT_RING_BUFFER_H_
