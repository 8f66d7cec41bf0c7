// Shared prelude of every kernel file: the Rust side (host/cuda/src/kernels.rs) prepends it to
// each .cu file before NVRTC compiles it, so the files need no #include (NVRTC has no CUDA
// headers at hand when it comes from the PyPI wheel).
//
// Weight rows are the GGUF bytes as stored (blocks of 18/20/22/34/144/210 bytes): every block
// starts at an even offset, so loads are at most 2-byte aligned and 32-bit words are assembled
// from two 16-bit loads.

typedef unsigned char u8;
typedef signed char i8;
typedef unsigned short u16;
typedef short i16;
typedef unsigned int u32;
typedef int i32;
typedef unsigned long long u64;
typedef long long i64;

#define WARP 32
// No math headers under NVRTC: positive infinity by its bits.
#define INFINITY __int_as_float(0x7f800000)

// IEEE half (bits) to float, exact.
__device__ __forceinline__ float f16_to_f32(u16 h) {
    float f;
    asm("cvt.f32.f16 %0, %1;" : "=f"(f) : "h"(h));
    return f;
}

__device__ __forceinline__ u16 load_u16(const u8* p) {
    return *(const u16*)p;
}

// A 32-bit little-endian word from a 2-byte-aligned address.
__device__ __forceinline__ u32 load_u32_a2(const u8* p) {
    const u16* q = (const u16*)p;
    return (u32)q[0] | ((u32)q[1] << 16);
}

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = WARP / 2; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
    for (int o = WARP / 2; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

// Sum over a block of up to 1024 threads; `red` is shared scratch of 32 floats. Every thread
// gets the result.
__device__ __forceinline__ float block_sum(float v, float* red) {
    const int lane = threadIdx.x % WARP, w = threadIdx.x / WARP;
    v = warp_sum(v);
    __syncthreads();
    if (lane == 0) red[w] = v;
    __syncthreads();
    const int nw = (blockDim.x + WARP - 1) / WARP;
    v = lane < nw ? red[lane] : 0.0f;
    return warp_sum(v);
}

__device__ __forceinline__ float block_max(float v, float* red) {
    const int lane = threadIdx.x % WARP, w = threadIdx.x / WARP;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) red[w] = v;
    __syncthreads();
    const int nw = (blockDim.x + WARP - 1) / WARP;
    v = lane < nw ? red[lane] : -INFINITY;
    return warp_max(v);
}
