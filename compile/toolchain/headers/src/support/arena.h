/*
 * tabllm (written from scratch; the apache-tvm wheel does not ship this header): bump-style arena for short-lived RPC temporaries.
 * allocate_<T>(n) returns uninitialised storage for n objects of T; RecycleAll() frees everything.
 */
#ifndef TVM_SUPPORT_ARENA_H_
#define TVM_SUPPORT_ARENA_H_

#include <cstddef>
#include <memory>
#include <new>
#include <vector>

namespace tvm {
namespace support {

class Arena {
 public:
  Arena() = default;
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;
  ~Arena() { RecycleAll(); }

  void* Alloc(size_t nbytes, size_t align = alignof(std::max_align_t)) {
    if (nbytes == 0) nbytes = 1;
    void* p = ::operator new(nbytes, std::align_val_t(align < alignof(std::max_align_t)
                                                           ? alignof(std::max_align_t)
                                                           : align));
    blocks_.push_back({p, align});
    return p;
  }
  template <typename T>
  T* allocate_(int count = 1) {
    return static_cast<T*>(Alloc(sizeof(T) * static_cast<size_t>(count < 1 ? 1 : count), alignof(T)));
  }
  template <typename T, typename... Args>
  T* make(Args&&... args) {
    return new (allocate_<T>(1)) T(std::forward<Args>(args)...);
  }
  void RecycleAll() {
    for (auto& b : blocks_) {
      ::operator delete(b.ptr, std::align_val_t(b.align < alignof(std::max_align_t)
                                                     ? alignof(std::max_align_t)
                                                     : b.align));
    }
    blocks_.clear();
  }

 private:
  struct Block {
    void* ptr;
    size_t align;
  };
  std::vector<Block> blocks_;
};

}  // namespace support
}  // namespace tvm

#endif  // TVM_SUPPORT_ARENA_H_
