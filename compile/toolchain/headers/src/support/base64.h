/*
 * tabllm (written from scratch; the apache-tvm wheel does not ship this header): base64 adaptors over tvm::support::Stream.
 * Base64OutStream encodes everything written to it into the wrapped stream (call Finish()).
 * Base64InStream decodes one whitespace-delimited base64 token from the wrapped stream
 * (call InitPosition() first).
 */
#ifndef TVM_SUPPORT_BASE64_H_
#define TVM_SUPPORT_BASE64_H_

#include <tvm/ffi/error.h>
#include <tvm/support/io.h>

#include <cctype>
#include <cstdio>
#include <cstring>
#include <string>

namespace tvm {
namespace support {

namespace b64_detail {
inline const char* Alphabet() {
  return "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
}
inline int Decode(int c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+') return 62;
  if (c == '/') return 63;
  return -1;
}
}  // namespace b64_detail

class Base64OutStream : public Stream {
 public:
  using Stream::Read;
  using Stream::Write;
  explicit Base64OutStream(Stream* sink) : sink_(sink) {}

  size_t Write(const void* ptr, size_t size) override {
    const unsigned char* p = static_cast<const unsigned char*>(ptr);
    for (size_t i = 0; i < size; ++i) {
      pending_[npending_++] = p[i];
      if (npending_ == 3) EmitGroup(3);
    }
    return size;
  }
  size_t Read(void*, size_t) override {
    TVM_FFI_THROW(InternalError) << "Base64OutStream is write-only";
    return 0;
  }
  /*! Flush the trailing partial group with '=' padding; optionally append endch. */
  void Finish(int endch = EOF) {
    if (npending_ != 0) EmitGroup(npending_);
    if (endch != EOF) out_.push_back(static_cast<char>(endch));
    if (!out_.empty()) sink_->Write(out_.data(), out_.size());
    out_.clear();
  }

 private:
  void EmitGroup(int n) {
    const char* a = b64_detail::Alphabet();
    unsigned v = (static_cast<unsigned>(pending_[0]) << 16) |
                 (n > 1 ? static_cast<unsigned>(pending_[1]) << 8 : 0u) |
                 (n > 2 ? static_cast<unsigned>(pending_[2]) : 0u);
    out_.push_back(a[(v >> 18) & 63]);
    out_.push_back(a[(v >> 12) & 63]);
    out_.push_back(n > 1 ? a[(v >> 6) & 63] : '=');
    out_.push_back(n > 2 ? a[v & 63] : '=');
    npending_ = 0;
    if (out_.size() >= 4096) {
      sink_->Write(out_.data(), out_.size());
      out_.clear();
    }
  }
  Stream* sink_;
  unsigned char pending_[3];
  int npending_ = 0;
  std::string out_;
};

class Base64InStream : public Stream {
 public:
  using Stream::Read;
  using Stream::Write;
  explicit Base64InStream(Stream* source) : source_(source) {}

  /*! Skip leading whitespace and decode the next base64 token into an internal buffer. */
  void InitPosition() {
    std::string text;
    char buf[4096];
    size_t n;
    while ((n = source_->Read(buf, sizeof(buf))) != 0) text.append(buf, n);
    size_t i = 0;
    while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
    decoded_.clear();
    pos_ = 0;
    unsigned acc = 0;
    int bits = 0;
    for (; i < text.size(); ++i) {
      unsigned char c = static_cast<unsigned char>(text[i]);
      if (std::isspace(c) || c == '=') break;
      int d = b64_detail::Decode(c);
      TVM_FFI_ICHECK(d >= 0) << "invalid base64 character";
      acc = (acc << 6) | static_cast<unsigned>(d);
      bits += 6;
      if (bits >= 8) {
        bits -= 8;
        decoded_.push_back(static_cast<char>((acc >> bits) & 0xFF));
      }
    }
  }
  size_t Read(void* ptr, size_t size) override {
    size_t left = decoded_.size() - pos_;
    size_t n = size < left ? size : left;
    if (n != 0) std::memcpy(ptr, decoded_.data() + pos_, n);
    pos_ += n;
    return n;
  }
  size_t Write(const void*, size_t) override {
    TVM_FFI_THROW(InternalError) << "Base64InStream is read-only";
    return 0;
  }

 private:
  Stream* source_;
  std::string decoded_;
  size_t pos_ = 0;
};

}  // namespace support
}  // namespace tvm

#endif  // TVM_SUPPORT_BASE64_H_
