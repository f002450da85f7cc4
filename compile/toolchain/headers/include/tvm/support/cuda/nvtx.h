/* tabllm (written from scratch; the apache-tvm wheel does not ship this header): NVTX ranges are a no-op outside CUDA builds. */
#ifndef TVM_SUPPORT_CUDA_NVTX_H_
#define TVM_SUPPORT_CUDA_NVTX_H_
#include <string>
namespace tvm {
namespace support {
class NVTXScopedRange {
 public:
  explicit NVTXScopedRange(const char*) {}
  explicit NVTXScopedRange(const std::string&) {}
  NVTXScopedRange(const NVTXScopedRange&) = delete;
  NVTXScopedRange& operator=(const NVTXScopedRange&) = delete;
};
}  // namespace support
}  // namespace tvm
#define TVM_NVTX_FUNC_SCOPE()
#endif  // TVM_SUPPORT_CUDA_NVTX_H_
