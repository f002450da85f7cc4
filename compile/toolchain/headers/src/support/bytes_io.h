/* tabllm (written from scratch; the apache-tvm wheel does not ship this header): in-memory byte streams over tvm::support::Stream. */
#ifndef TVM_SUPPORT_BYTES_IO_H_
#define TVM_SUPPORT_BYTES_IO_H_

#include <tvm/ffi/error.h>
#include <tvm/ffi/string.h>
#include <tvm/support/io.h>

#include <cstring>
#include <string>

namespace tvm {
namespace support {

/*! Reads sequentially from a borrowed memory region (the owner must outlive the stream). */
class BytesInStream : public Stream {
 public:
  using Stream::Read;
  using Stream::Write;
  BytesInStream(const void* data, size_t size)
      : begin_(static_cast<const char*>(data)), size_(size) {}
  explicit BytesInStream(const std::string& s) : begin_(s.data()), size_(s.size()) {}
  explicit BytesInStream(const ffi::Bytes& b) : begin_(b.data()), size_(b.size()) {}

  size_t Read(void* ptr, size_t size) override {
    size_t left = size_ - pos_;
    size_t n = size < left ? size : left;
    if (n != 0) std::memcpy(ptr, begin_ + pos_, n);
    pos_ += n;
    return n;
  }
  size_t Write(const void*, size_t) override {
    TVM_FFI_THROW(InternalError) << "BytesInStream is read-only";
    return 0;
  }

 private:
  const char* begin_;
  size_t size_;
  size_t pos_ = 0;
};

/*! Appends everything written to a borrowed std::string. */
class BytesOutStream : public Stream {
 public:
  using Stream::Read;
  using Stream::Write;
  explicit BytesOutStream(std::string* out) : out_(out) {}

  size_t Write(const void* ptr, size_t size) override {
    out_->append(static_cast<const char*>(ptr), size);
    return size;
  }
  size_t Read(void*, size_t) override {
    TVM_FFI_THROW(InternalError) << "BytesOutStream is write-only";
    return 0;
  }

 private:
  std::string* out_;
};

}  // namespace support
}  // namespace tvm

#endif  // TVM_SUPPORT_BYTES_IO_H_
