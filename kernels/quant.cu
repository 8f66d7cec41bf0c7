// Quantized matrix products for the GGUF weight types the engine reads (quant.rs):
// Q4_0, Q4_1, Q5_0, Q8_0 (blocks of 32), Q4_K, Q6_K (super-blocks of 256), F16 and F32.
//
// As on the CPU (and in llama.cpp), activations are first quantized to int8 blocks —
// Q8_0 for Q4_0/Q5_0/Q8_0, Q8_1 (with the scaled sum) for Q4_1, Q8_K (with 16-element sums)
// for the k-quants — with the same rounding as quant.rs::quantize_act_row, so the integer
// block sums equal the CPU's exactly; the int8 products use dp4a. Only the f32 combination of
// blocks differs in order from the CPU.
//
// Device activation layout (one token row of k values):
//   aq: k int8 (4-byte aligned), ad: one f32 scale per block, as_: per block d * sum(q)
//   (Q8_1 only), bs: one i16 sum per 16 quants (Q8_K only).
//
// mul_mat_*: out[t * rows + r] = sum_c W[r][c] * x[t][c]. Block: 4 warps, one weight row per
// warp; grid (ceil(rows / 4), ceil(n_tokens / TOK)). Each warp reads its row once for up to
// TOK tokens (mat-vec when n_tokens = 1, mat-mat otherwise).

#define TOK 8
#define ROWS_PER_BLOCK 4

__device__ __forceinline__ i8 round_i8(float v) {
    // f32::round (half away from zero), then clamp to [-127, 127].
    float r = roundf(v);
    r = fminf(fmaxf(r, -127.0f), 127.0f);
    return (i8)(int)r;
}

// One block of `bsz` activations per CUDA block of bsz threads (bsz = 32 or 256).
// mode 0: Q8_0 (d), 1: Q8_1 (d, d*sum), 2: Q8_K (d, 16-sums).
extern "C" __global__ void quantize_act(const float* x, int n_blocks, int bsz, int mode, i8* aq, float* ad, float* as_,
                                        i16* bs) {
    __shared__ float red[32];
    __shared__ int sums[16];
    const int b = blockIdx.x;
    if (b >= n_blocks) return;
    const float v = x[(size_t)b * bsz + threadIdx.x];
    const float amax = block_max(fabsf(v), red);
    const float d = amax / 127.0f;
    const float id = d != 0.0f ? 1.0f / d : 0.0f;
    const i8 q = round_i8(v * id);
    aq[(size_t)b * bsz + threadIdx.x] = q;
    if (mode == 2) {
        if (threadIdx.x < 16) sums[threadIdx.x] = 0;
        __syncthreads();
        atomicAdd(&sums[threadIdx.x / 16], (int)q);
        __syncthreads();
        if (threadIdx.x < 16) bs[(size_t)b * 16 + threadIdx.x] = (i16)sums[threadIdx.x];
    }
    if (mode == 1) {
        const float s = block_sum((float)q, red);  // |sum| <= 32 * 127: exact in f32
        if (threadIdx.x == 0) as_[b] = d * s;
    }
    if (threadIdx.x == 0) ad[b] = d;
}

__device__ __forceinline__ int dp4a(int a, int b, int c) { return __dp4a(a, b, c); }

// 32-element blocks: integer sum of one weight block against one activation block.

__device__ __forceinline__ float dot_q4_0(const u8* w, const int* a, float ad, float) {
    const float d = f16_to_f32(load_u16(w));
    const u8* qs = w + 2;
    int s = 0, sa = 0;
    for (int j = 0; j < 4; ++j) {
        const u32 q = load_u32_a2(qs + 4 * j);
        s = dp4a((int)(q & 0x0F0F0F0Fu), a[j], s);
        s = dp4a((int)((q >> 4) & 0x0F0F0F0Fu), a[j + 4], s);
    }
    for (int j = 0; j < 8; ++j) sa = dp4a(0x01010101, a[j], sa);
    return d * ad * (float)(s - 8 * sa);
}

__device__ __forceinline__ float dot_q4_1(const u8* w, const int* a, float ad, float as_) {
    const float d = f16_to_f32(load_u16(w));
    const float m = f16_to_f32(load_u16(w + 2));
    const u8* qs = w + 4;
    int s = 0;
    for (int j = 0; j < 4; ++j) {
        const u32 q = load_u32_a2(qs + 4 * j);
        s = dp4a((int)(q & 0x0F0F0F0Fu), a[j], s);
        s = dp4a((int)((q >> 4) & 0x0F0F0F0Fu), a[j + 4], s);
    }
    return d * ad * (float)s + m * as_;
}

__device__ __forceinline__ float dot_q5_0(const u8* w, const int* a, float ad, float) {
    const float d = f16_to_f32(load_u16(w));
    const u32 qh = load_u32_a2(w + 2);
    const u8* qs = w + 6;
    int s = 0, sa = 0;
    for (int j = 0; j < 4; ++j) {
        const u32 q = load_u32_a2(qs + 4 * j);
        u32 lo = q & 0x0F0F0F0Fu, hi = (q >> 4) & 0x0F0F0F0Fu;
        for (int i = 0; i < 4; ++i) {
            lo |= ((qh >> (4 * j + i)) & 1u) << (8 * i + 4);
            hi |= ((qh >> (16 + 4 * j + i)) & 1u) << (8 * i + 4);
        }
        s = dp4a((int)lo, a[j], s);
        s = dp4a((int)hi, a[j + 4], s);
    }
    for (int j = 0; j < 8; ++j) sa = dp4a(0x01010101, a[j], sa);
    return d * ad * (float)(s - 16 * sa);
}

__device__ __forceinline__ float dot_q8_0(const u8* w, const int* a, float ad, float) {
    const float d = f16_to_f32(load_u16(w));
    int s = 0;
    for (int j = 0; j < 8; ++j) s = dp4a((int)load_u32_a2(w + 2 + 4 * j), a[j], s);
    return d * ad * (float)s;
}

// Q4_K: 6-bit scale and minimum j (0..8), as quant.rs::q4k_scale_min.
__device__ __forceinline__ void q4k_scale_min(int j, const u8* q, int* sc, int* m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

// 256-element super-blocks against a Q8_K activation super-block (a: 64 ints, bs: 16 sums).
__device__ __forceinline__ float dot_q4k(const u8* w, const int* a, float ad, const i16* bs) {
    const float d = f16_to_f32(load_u16(w));
    const float dmin = f16_to_f32(load_u16(w + 2));
    const u8* scales = w + 4;
    const u8* qs = w + 16;
    int sum = 0, mins = 0;
    for (int j = 0; j < 4; ++j) {
        int s1, m1, s2, m2;
        q4k_scale_min(2 * j, scales, &s1, &m1);
        q4k_scale_min(2 * j + 1, scales, &s2, &m2);
        int p1 = 0, p2 = 0;
        for (int l = 0; l < 8; ++l) {
            const u32 q = load_u32_a2(qs + 32 * j + 4 * l);
            p1 = dp4a((int)(q & 0x0F0F0F0Fu), a[16 * j + l], p1);
            p2 = dp4a((int)((q >> 4) & 0x0F0F0F0Fu), a[16 * j + 8 + l], p2);
        }
        sum += p1 * s1 + p2 * s2;
        mins += m1 * ((int)bs[4 * j] + (int)bs[4 * j + 1]) + m2 * ((int)bs[4 * j + 2] + (int)bs[4 * j + 3]);
    }
    return d * ad * (float)sum - dmin * ad * (float)mins;
}

__device__ __forceinline__ float dot_q6k(const u8* w, const int* a, float ad, const i16*) {
    const u8* ql0 = w;
    const u8* qh0 = w + 128;
    const i8* sc0 = (const i8*)(w + 192);
    const float d = f16_to_f32(load_u16(w + 208));
    const i8* q8all = (const i8*)a;
    int sum = 0;
    for (int h = 0; h < 2; ++h) {
        const u8* ql = ql0 + 64 * h;
        const u8* qh = qh0 + 32 * h;
        const i8* sc = sc0 + 8 * h;
        const i8* q8 = q8all + 128 * h;
        int p[8] = {0, 0, 0, 0, 0, 0, 0, 0};
        for (int l = 0; l < 32; ++l) {
            const int is = l / 16;
            const int q1 = (int)((ql[l] & 0xF) | ((qh[l] & 3) << 4)) - 32;
            const int q2 = (int)((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
            const int q3 = (int)((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
            const int q4 = (int)((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
            p[is] += q1 * q8[l];
            p[is + 2] += q2 * q8[l + 32];
            p[is + 4] += q3 * q8[l + 64];
            p[is + 6] += q4 * q8[l + 96];
        }
        for (int k = 0; k < 8; ++k) sum += p[k] * sc[k];
    }
    return d * ad * (float)sum;
}

// The product kernel, generic over the block dot. BSZ: elements per block, BBYTES: bytes.
template <int BSZ, int BBYTES, int KIND>
__device__ __forceinline__ void mul_mat_q(const u8* w, int rows, int k, const i8* aq, const float* ad,
                                          const float* as_, const i16* bs, int n_tokens, float* out) {
    const int lane = threadIdx.x % WARP;
    const int row = blockIdx.x * ROWS_PER_BLOCK + threadIdx.x / WARP;
    const int t0 = blockIdx.y * TOK;
    if (row >= rows) return;
    const int nt = min(TOK, n_tokens - t0);
    const int nb = k / BSZ;
    const u8* wr = w + (size_t)row * nb * BBYTES;
    float acc[TOK];
    for (int t = 0; t < TOK; ++t) acc[t] = 0.0f;
    for (int b = lane; b < nb; b += WARP) {
        const u8* wb = wr + (size_t)b * BBYTES;
        for (int t = 0; t < nt; ++t) {
            const size_t tb = (size_t)(t0 + t) * nb + b;
            const int* a = (const int*)(aq + tb * BSZ);
            float v;
            if (KIND == 0) v = dot_q4_0(wb, a, ad[tb], 0.0f);
            else if (KIND == 1) v = dot_q4_1(wb, a, ad[tb], as_[tb]);
            else if (KIND == 2) v = dot_q5_0(wb, a, ad[tb], 0.0f);
            else if (KIND == 3) v = dot_q8_0(wb, a, ad[tb], 0.0f);
            else if (KIND == 4) v = dot_q4k(wb, a, ad[tb], bs + tb * 16);
            else v = dot_q6k(wb, a, ad[tb], bs + tb * 16);
            acc[t] += v;
        }
    }
    for (int t = 0; t < nt; ++t) {
        const float s = warp_sum(acc[t]);
        if (lane == 0) out[(size_t)(t0 + t) * rows + row] = s;
    }
}

#define MUL_MAT(name, BSZ, BBYTES, KIND)                                                                        \
    extern "C" __global__ void name(const u8* w, int rows, int k, const i8* aq, const float* ad, const float* as_, \
                                    const i16* bs, int n_tokens, float* out) {                                   \
        mul_mat_q<BSZ, BBYTES, KIND>(w, rows, k, aq, ad, as_, bs, n_tokens, out);                                \
    }

MUL_MAT(mul_mat_q4_0, 32, 18, 0)
MUL_MAT(mul_mat_q4_1, 32, 20, 1)
MUL_MAT(mul_mat_q5_0, 32, 22, 2)
MUL_MAT(mul_mat_q8_0, 32, 34, 3)
MUL_MAT(mul_mat_q4k, 256, 144, 4)
MUL_MAT(mul_mat_q6k, 256, 210, 5)

// Float weights against f32 activations (no activation quantization).
template <bool HALF>
__device__ __forceinline__ void mul_mat_float(const u8* w, int rows, int k, const float* x, int n_tokens, float* out) {
    const int lane = threadIdx.x % WARP;
    const int row = blockIdx.x * ROWS_PER_BLOCK + threadIdx.x / WARP;
    const int t0 = blockIdx.y * TOK;
    if (row >= rows) return;
    const int nt = min(TOK, n_tokens - t0);
    float acc[TOK];
    for (int t = 0; t < TOK; ++t) acc[t] = 0.0f;
    for (int c = lane; c < k; c += WARP) {
        const float wv = HALF ? f16_to_f32(((const u16*)w)[(size_t)row * k + c]) : ((const float*)w)[(size_t)row * k + c];
        for (int t = 0; t < nt; ++t) acc[t] += wv * x[(size_t)(t0 + t) * k + c];
    }
    for (int t = 0; t < nt; ++t) {
        const float s = warp_sum(acc[t]);
        if (lane == 0) out[(size_t)(t0 + t) * rows + row] = s;
    }
}

extern "C" __global__ void mul_mat_f32(const u8* w, int rows, int k, const float* x, int n_tokens, float* out) {
    mul_mat_float<false>(w, rows, k, x, n_tokens, out);
}

extern "C" __global__ void mul_mat_f16(const u8* w, int rows, int k, const float* x, int n_tokens, float* out) {
    mul_mat_float<true>(w, rows, k, x, n_tokens, out);
}
