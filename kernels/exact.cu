// The exact-arithmetic islands on the GPU: integer ports of host/exact, equal to it bit for
// bit (integer operations only, no float instruction; every reduction is an exact integer sum,
// so the order threads add in does not matter). Formats as in engram_exact: activations Q15.16
// (i32), probabilities Q2.30 (u32), cos/sin Q1.30 (i32). The RoPE cos/sin tables are computed
// on the host by engram_exact::RopeTable (CORDIC) and passed in, so they are the same numbers.
//
// Port of: fixed::round_shift_i128/i64, saturate_i32, isqrt_u128; exp::exp2_neg_q46,
// exp_neg_act; rmsnorm::rms_norm; softmax::softmax; activation::sigmoid_q30, silu, swiglu;
// rope::rope_adjacent/rope_neox (rotate); attention::attend; quant::quantize_act.

typedef __int128 i128;
typedef unsigned __int128 u128;

#define ACT_FRAC_BITS 16
#define PROB_FRAC_BITS 30
#define TRIG_FRAC_BITS 30

__constant__ u64 EXP2_NEG_Q62[64] = {
    4611686018427387904ull, 4562008997483360349ull, 4512867096753504463ull, 4464254551929933550ull,
    4416165660797809419ull, 4368594782566476878ull, 4321536337207803251ull, 4274984804801645281ull,
    4228934724888366668ull, 4183380695828330266ull, 4138317374168289834ull, 4093739474014606996ull,
    4049641766413219908ull, 4006019078736290889ull, 3962866294075461077ull, 3920178350641640941ull,
    3877950241171266237ull, 3836177012338949768ull, 3794853764176460055ull, 3753975649497958757ull,
    3713537873331429433ull, 3673535692356230935ull, 3633964414346709481ull, 3594819397621804119ull,
    3556096050500581047ull, 3517789830763632898ull, 3479896245120279830ull, 3442410848681509921ull,
    3405329244438597040ull, 3368647082747335039ull, 3332360060817827770ull, 3296463922209775076ull,
    3260954456333195553ull, 3225827497954527522ull, 3191078926708050276ull, 3156704666612568285ull,
    3122700685593301682ull, 3089062995008926926ull, 3055787649183712190ull, 3022870744944692570ull,
    2990308421163830843ull, 2958096858305110056ull, 2926232277976504838ull, 2894710942486778865ull,
    2863529154407056491ull, 2832683256137117140ull, 2802169629476361550ull, 2771984695199399577ull,
    2742124912636209756ull, 2712586779256821376ull, 2683366830260470360ull, 2654461638169180747ull,
    2625867812425724110ull, 2597581998995909751ull, 2569600879975159024ull, 2541921173199317625ull,
    2514539631859660218ull, 2487453044122042215ull, 2460658232750154058ull, 2434152054732833796ull,
    2407931400915394245ull, 2381993195634921490ull, 2356334396359501942ull, 2330951993331335645ull,
};

#define LN2_Q62 3196577161300663915ull
#define LOG2E_Q30 1549082005ull

__device__ __forceinline__ i128 round_shift_i128(i128 v, unsigned s) {
    if (s == 0) return v;
    const i128 half = (i128)1 << (s - 1);
    return v >= 0 ? (v + half) >> s : -((half - v) >> s);
}

__device__ __forceinline__ i64 round_shift_i64(i64 v, unsigned s) {
    if (s == 0) return v;
    const i64 half = (i64)1 << (s - 1);
    return v >= 0 ? (v + half) >> s : -((half - v) >> s);
}

__device__ __forceinline__ i32 saturate_i32(i128 v) {
    if (v < (i128)(-2147483647 - 1)) return -2147483647 - 1;
    if (v > (i128)2147483647) return 2147483647;
    return (i32)v;
}

__device__ __forceinline__ unsigned bit_len_u128(u128 n) {
    const u64 hi = (u64)(n >> 64);
    return hi ? 128 - __clzll((i64)hi) : 64 - (((u64)n) ? __clzll((i64)(u64)n) : 64);
}

__device__ u128 isqrt_u128(u128 n) {
    if (n < 2) return n;
    const unsigned bits = bit_len_u128(n);
    u128 x = (u128)1 << ((bits + 1) / 2);
    for (;;) {
        const u128 y = (x + n / x) >> 1;
        if (y >= x) return x;
        x = y;
    }
}

__device__ __forceinline__ u32 exp2_neg_q46(u64 t) {
    const u64 k = t >> 46;
    if (k >= 32) return 0;
    const u64 f = t & ((1ull << 46) - 1);
    const int j = (int)(f >> 40);
    const u64 r = f & ((1ull << 40) - 1);
    const u64 u = (u64)(((u128)r * (u128)LN2_Q62) >> 76);
    const u64 u2 = (u * u) >> 32;
    const u64 u3 = (u2 * u) >> 32;
    const u64 u4 = (u3 * u) >> 32;
    const u64 p = (1ull << 32) - u + u2 / 2 - u3 / 6 + u4 / 24;
    const u64 tq32 = (EXP2_NEG_Q62[j] + (1ull << 29)) >> 30;
    const u128 v = (u128)p * (u128)tq32;
    const unsigned s = 64 - PROB_FRAC_BITS + (unsigned)k;
    return (u32)((v + ((u128)1 << (s - 1))) >> s);
}

__device__ __forceinline__ u32 exp_neg_act(i32 x) {
    if (x >= 0) return 1u << PROB_FRAC_BITS;
    const u64 mag = (u64)(0u - (u32)x);  // unsigned_abs
    return exp2_neg_q46(mag * LOG2E_Q30);
}

__device__ __forceinline__ u32 sigmoid_q30(i32 x) {
    const u64 one = 1ull << PROB_FRAC_BITS;
    const u32 ax = x < 0 ? 0u - (u32)x : (u32)x;
    const u64 e = exp2_neg_q46((u64)ax * LOG2E_Q30);
    const u64 den = one + e;
    const u64 num = (x >= 0 ? one : e) << PROB_FRAC_BITS;
    return (u32)((num + den / 2) / den);
}

// silu(x) = x * sigmoid(x), Q15.16.
extern "C" __global__ void exact_silu(i32* x, int n) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] = (i32)round_shift_i64((i64)x[i] * (i64)sigmoid_q30(x[i]), PROB_FRAC_BITS);
}

// out = silu(gate) * up with a single rounding, saturated.
extern "C" __global__ void exact_swiglu(const i32* gate, const i32* up, i32* out, int n) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        const i32 g = gate[i];
        const i128 v = (i128)g * (i128)sigmoid_q30(g) * (i128)up[i];
        out[i] = saturate_i32(round_shift_i128(v, PROB_FRAC_BITS + ACT_FRAC_BITS));
    }
}

// RMSNorm of each row of d values (one block per row):
// INV = isqrt(n * 2^96 / (sum x^2 + n * eps)), y = round(x * w * INV / 2^48).
extern "C" __global__ void exact_rms_norm(const i32* x, const i32* w, u64 eps_q32, int d, i32* out) {
    __shared__ unsigned long long lo_sum, hi_sum;
    __shared__ u128 inv_sh;
    const i32* xr = x + (size_t)blockIdx.x * d;
    i32* orow = out + (size_t)blockIdx.x * d;
    if (threadIdx.x == 0) { lo_sum = 0; hi_sum = 0; }
    __syncthreads();
    // Each square is < 2^62; the sum of up to 2^24 of them fits u128. Accumulate per thread,
    // then add the 128-bit partials exactly as two 64-bit words with carry.
    u128 part = 0;
    for (int i = threadIdx.x; i < d; i += blockDim.x) part += (u128)((i64)xr[i] * (i64)xr[i]);
    const unsigned long long plo = (unsigned long long)part, phi = (unsigned long long)(part >> 64);
    const unsigned long long old = atomicAdd(&lo_sum, plo);
    const unsigned long long carry = (old + plo < old) ? 1ull : 0ull;
    atomicAdd(&hi_sum, phi + carry);
    __syncthreads();
    if (threadIdx.x == 0) {
        const u128 s = ((u128)hi_sum << 64) | (u128)lo_sum;
        const u128 dd = s + (u128)d * (u128)eps_q32;
        inv_sh = dd == 0 ? 0 : isqrt_u128(((u128)d << 96) / dd);
    }
    __syncthreads();
    const i128 inv = (i128)inv_sh;
    for (int i = threadIdx.x; i < d; i += blockDim.x)
        orow[i] = saturate_i32(round_shift_i128((i128)xr[i] * (i128)w[i] * inv, 48));
}

__device__ __forceinline__ void rotate(i32* a, i32* b, i32 c, i32 s) {
    const i64 x = *a, y = *b;
    i64 xr = round_shift_i64(x * c - y * s, TRIG_FRAC_BITS);
    i64 yr = round_shift_i64(x * s + y * c, TRIG_FRAC_BITS);
    xr = xr < -2147483648ll ? -2147483648ll : (xr > 2147483647ll ? 2147483647ll : xr);
    yr = yr < -2147483648ll ? -2147483648ll : (yr > 2147483647ll ? 2147483647ll : yr);
    *a = (i32)xr;
    *b = (i32)yr;
}

// RoPE on Q15.16 heads: row r uses cos/sin row r (half values each, Q1.30, from RopeTable).
// layout 0: pairs (2i, 2i+1) (rope_adjacent), 1: pairs (i, i+half) (rope_neox).
// Grid (rows, n_heads), block: half threads.
extern "C" __global__ void exact_rope(i32* x, const i32* cos_t, const i32* sin_t, int n_heads, int head_dim, int half,
                                      int layout) {
    const int row = blockIdx.x, h = blockIdx.y, i = threadIdx.x;
    if (i >= half) return;
    i32* hp = x + ((size_t)row * n_heads + h) * head_dim;
    const i32 c = cos_t[(size_t)row * half + i], s = sin_t[(size_t)row * half + i];
    if (layout == 0) rotate(&hp[2 * i], &hp[2 * i + 1], c, s);
    else rotate(&hp[i], &hp[i + half], c, s);
}

// Quantizes Q15.16 activations to power-of-two-scaled int8 blocks of 32 (quant::quantize_act):
// one thread per block. Outputs: qs (32 per block), sum (i16), shift (u8).
extern "C" __global__ void exact_quantize_act(const i32* x, int n_blocks, i8* qs, i16* sums, u8* shifts) {
    const int b = blockIdx.x * blockDim.x + threadIdx.x;
    if (b >= n_blocks) return;
    const i32* c = x + (size_t)b * 32;
    u64 amax = 0;
    for (int i = 0; i < 32; ++i) {
        const u64 a = c[i] < 0 ? (u64)(0u - (u32)c[i]) : (u64)c[i];
        amax = a > amax ? a : amax;
    }
    const unsigned bits = amax ? 64 - __clzll((i64)amax) : 0;
    unsigned k = bits > 7 ? bits - 7 : 0;
    if (k > 0 && ((amax + (1ull << (k - 1))) >> k) > 127) k += 1;
    int sum = 0;
    for (int i = 0; i < 32; ++i) {
        const i8 q = (i8)round_shift_i128((i128)c[i], k);
        qs[(size_t)b * 32 + i] = q;
        sum += q;
    }
    sums[b] = (i16)sum;
    shifts[b] = (u8)k;
}

// Exact attention of one head (attention::attend), one block per (t, head), causal over the
// cache: query t sees positions 0 .. pos0 + t. Dynamic shared memory: n_ctx u32.
extern "C" __global__ void exact_attention(const i32* q, const i32* k, const i32* v, int n_head, int n_head_kv, int head_dim,
                                           int pos0, u32 scale_q30, i32* out) {
    extern __shared__ u32 probs[];
    __shared__ unsigned long long best, esum, total;
    const int t = blockIdx.x, h = blockIdx.y;
    const int kvh = h / (n_head / n_head_kv);
    const int n = pos0 + t + 1;
    const int stride = n_head_kv * head_dim;
    const i32* qh = q + ((size_t)t * n_head + h) * head_dim;
    if (threadIdx.x == 0) { best = 0; esum = 0; total = 0; }
    __syncthreads();
    // Scores: saturate(round(dot * scale / 2^46)); dot exact in i128.
    for (int j = threadIdx.x; j < n; j += blockDim.x) {
        const i32* kj = k + (size_t)j * stride + kvh * head_dim;
        i128 dot = 0;
        for (int i = 0; i < head_dim; ++i) dot += (i128)((i64)qh[i] * (i64)kj[i]);
        const i32 s = saturate_i32(round_shift_i128(dot * (i128)scale_q30, 16 + PROB_FRAC_BITS));
        probs[j] = (u32)s;
        // max with the first index on ties: order by (score, -index).
        const unsigned long long key = ((unsigned long long)((u32)s ^ 0x80000000u) << 32) | (unsigned long long)(0xffffffffu - (u32)j);
        atomicMax(&best, key);
    }
    __syncthreads();
    const i32 mx = (i32)((u32)(best >> 32) ^ 0x80000000u);
    const int arg = (int)(0xffffffffu - (u32)(best & 0xffffffffull));
    for (int j = threadIdx.x; j < n; j += blockDim.x) {
        i64 d = (i64)(i32)probs[j] - (i64)mx;
        if (d < -2147483648ll) d = -2147483648ll;
        const u32 e = exp_neg_act((i32)d);
        probs[j] = e;
        atomicAdd(&esum, (unsigned long long)e);
    }
    __syncthreads();
    const u64 sum = esum;
    const u64 recip = 0xffffffffffffffffull / sum;
    for (int j = threadIdx.x; j < n; j += blockDim.x) {
        const u64 num = ((u64)probs[j] << PROB_FRAC_BITS) + sum / 2;
        u64 quot = (u64)(((u128)num * (u128)recip) >> 64);
        while (num - quot * sum >= sum) quot += 1;
        probs[j] = (u32)quot;
        atomicAdd(&total, (unsigned long long)quot);
    }
    __syncthreads();
    if (threadIdx.x == 0) probs[arg] = (u32)((i64)probs[arg] + ((1ll << PROB_FRAC_BITS) - (i64)total));
    __syncthreads();
    i32* oh = out + ((size_t)t * n_head + h) * head_dim;
    for (int i = threadIdx.x; i < head_dim; i += blockDim.x) {
        i64 acc = 0;
        for (int j = 0; j < n; ++j) acc += (i64)probs[j] * (i64)v[(size_t)j * stride + kvh * head_dim + i];
        oh[i] = (i32)round_shift_i64(acc, PROB_FRAC_BITS);
    }
}
