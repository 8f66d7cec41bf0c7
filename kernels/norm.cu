// RMSNorm, float path: out = x / sqrt(mean(x^2) + eps) * w, one block per row.
// Mirrors CpuOps::rms_norm (ss / d, then 1 / sqrt(ss + eps)).

extern "C" __global__ void rms_norm_f32(const float* x, const float* w, float eps, int d, float* out) {
    __shared__ float red[32];
    const float* xr = x + (size_t)blockIdx.x * d;
    float* orow = out + (size_t)blockIdx.x * d;
    float ss = 0.0f;
    for (int i = threadIdx.x; i < d; i += blockDim.x) ss += xr[i] * xr[i];
    ss = block_sum(ss, red) / (float)d;
    const float scale = 1.0f / sqrtf(ss + eps);
    for (int i = threadIdx.x; i < d; i += blockDim.x) orow[i] = xr[i] * scale * w[i];
}
