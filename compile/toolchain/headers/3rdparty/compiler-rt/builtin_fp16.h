/*
 * tabllm (written from scratch; the apache-tvm wheel does not ship this header): generic IEEE-754 binary format conversions
 * with the template signatures used by TVM runtime sources:
 *   __extendXfYf2__<SRC_T, SRC_REP_T, SRC_SIG_BITS, DST_T, DST_REP_T, DST_SIG_BITS>(a)  narrow -> wide
 *   __truncXfYf2__ <SRC_T, SRC_REP_T, SRC_SIG_BITS, DST_T, DST_REP_T, DST_SIG_BITS>(a)  wide -> narrow,
 *                                                                  round to nearest, ties to even
 * The *_REP_T are unsigned integer types of the same width as the format.
 */
#ifndef TVM_SHIM_BUILTIN_FP16_H_
#define TVM_SHIM_BUILTIN_FP16_H_

#include <cstdint>
#include <cstring>

namespace tvm_fp_shim {
template <typename T, typename R>
inline R BitsOf(T v) {
  static_assert(sizeof(T) == sizeof(R), "size mismatch");
  R r;
  std::memcpy(&r, &v, sizeof(R));
  return r;
}
template <typename T, typename R>
inline T FromBits(R r) {
  static_assert(sizeof(T) == sizeof(R), "size mismatch");
  T v;
  std::memcpy(&v, &r, sizeof(T));
  return v;
}
}  // namespace tvm_fp_shim

template <typename SRC_T, typename SRC_REP_T, int SRC_SIG_BITS, typename DST_T, typename DST_REP_T,
          int DST_SIG_BITS>
static inline DST_T __extendXfYf2__(SRC_T a) {
  constexpr int kSrcBits = static_cast<int>(sizeof(SRC_REP_T) * 8);
  constexpr int kSrcExpBits = kSrcBits - SRC_SIG_BITS - 1;
  constexpr int kSrcBias = (1 << (kSrcExpBits - 1)) - 1;
  constexpr int kDstBits = static_cast<int>(sizeof(DST_REP_T) * 8);
  constexpr int kDstExpBits = kDstBits - DST_SIG_BITS - 1;
  constexpr int kDstBias = (1 << (kDstExpBits - 1)) - 1;
  static_assert(DST_SIG_BITS >= SRC_SIG_BITS && kDstExpBits >= kSrcExpBits, "not widening");

  uint64_t src = static_cast<uint64_t>(tvm_fp_shim::BitsOf<SRC_T, SRC_REP_T>(a));
  uint64_t sign = (src >> (kSrcBits - 1)) & 1u;
  int exp = static_cast<int>((src >> SRC_SIG_BITS) & ((1ull << kSrcExpBits) - 1));
  uint64_t mant = src & ((1ull << SRC_SIG_BITS) - 1);
  uint64_t out_exp, out_mant;
  if (exp == (1 << kSrcExpBits) - 1) {  // inf / nan
    out_exp = (1ull << kDstExpBits) - 1;
    out_mant = mant << (DST_SIG_BITS - SRC_SIG_BITS);
  } else if (exp == 0) {
    if (mant == 0) {
      out_exp = 0;
      out_mant = 0;
    } else {  // subnormal source: normalise
      int e = 1 - kSrcBias;
      while ((mant & (1ull << SRC_SIG_BITS)) == 0) {
        mant <<= 1;
        --e;
      }
      mant &= (1ull << SRC_SIG_BITS) - 1;
      out_exp = static_cast<uint64_t>(e + kDstBias);
      out_mant = mant << (DST_SIG_BITS - SRC_SIG_BITS);
    }
  } else {
    out_exp = static_cast<uint64_t>(exp - kSrcBias + kDstBias);
    out_mant = mant << (DST_SIG_BITS - SRC_SIG_BITS);
  }
  uint64_t bits = (sign << (kDstBits - 1)) | (out_exp << DST_SIG_BITS) | out_mant;
  return tvm_fp_shim::FromBits<DST_T, DST_REP_T>(static_cast<DST_REP_T>(bits));
}

template <typename SRC_T, typename SRC_REP_T, int SRC_SIG_BITS, typename DST_T, typename DST_REP_T,
          int DST_SIG_BITS>
static inline DST_T __truncXfYf2__(SRC_T a) {
  constexpr int kSrcBits = static_cast<int>(sizeof(SRC_REP_T) * 8);
  constexpr int kSrcExpBits = kSrcBits - SRC_SIG_BITS - 1;
  constexpr int kSrcBias = (1 << (kSrcExpBits - 1)) - 1;
  constexpr int kDstBits = static_cast<int>(sizeof(DST_REP_T) * 8);
  constexpr int kDstExpBits = kDstBits - DST_SIG_BITS - 1;
  constexpr int kDstBias = (1 << (kDstExpBits - 1)) - 1;
  constexpr int kDstExpMax = (1 << kDstExpBits) - 1;
  static_assert(DST_SIG_BITS <= SRC_SIG_BITS && kDstExpBits <= kSrcExpBits, "not narrowing");

  uint64_t src = static_cast<uint64_t>(tvm_fp_shim::BitsOf<SRC_T, SRC_REP_T>(a));
  uint64_t sign = (src >> (kSrcBits - 1)) & 1u;
  int exp = static_cast<int>((src >> SRC_SIG_BITS) & ((1ull << kSrcExpBits) - 1));
  uint64_t mant = src & ((1ull << SRC_SIG_BITS) - 1);
  uint64_t mag;  // exponent and mantissa fields of the result
  auto round_shift = [](uint64_t m, int shift) -> uint64_t {
    if (shift <= 0) return m << (-shift);
    if (shift >= 64) return 0;
    uint64_t q = m >> shift;
    uint64_t rem = m & ((1ull << shift) - 1);
    uint64_t half = 1ull << (shift - 1);
    if (rem > half || (rem == half && (q & 1u))) ++q;
    return q;
  };
  if (exp == (1 << kSrcExpBits) - 1) {  // inf / nan (nan stays quiet nan)
    uint64_t m = mant == 0 ? 0 : ((mant >> (SRC_SIG_BITS - DST_SIG_BITS)) | (1ull << (DST_SIG_BITS - 1)));
    mag = (static_cast<uint64_t>(kDstExpMax) << DST_SIG_BITS) | m;
  } else if (exp == 0) {  // zero or source subnormal: far below the narrow range
    mag = 0;
  } else {
    int e = exp - kSrcBias + kDstBias;
    uint64_t full = mant | (1ull << SRC_SIG_BITS);
    if (e >= kDstExpMax) {
      mag = static_cast<uint64_t>(kDstExpMax) << DST_SIG_BITS;
    } else if (e <= 0) {  // result is subnormal (or rounds up to the smallest normal)
      mag = round_shift(full, (SRC_SIG_BITS - DST_SIG_BITS) + (1 - e));
    } else {
      uint64_t q = round_shift(mant, SRC_SIG_BITS - DST_SIG_BITS);
      mag = (static_cast<uint64_t>(e) << DST_SIG_BITS) + q;  // carry may bump exponent (to inf)
      if ((mag >> DST_SIG_BITS) >= static_cast<uint64_t>(kDstExpMax))
        mag = static_cast<uint64_t>(kDstExpMax) << DST_SIG_BITS;
    }
  }
  uint64_t bits = (sign << (kDstBits - 1)) | mag;
  return tvm_fp_shim::FromBits<DST_T, DST_REP_T>(static_cast<DST_REP_T>(bits));
}

#endif  // TVM_SHIM_BUILTIN_FP16_H_
