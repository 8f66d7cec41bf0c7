// Elementwise pieces of the block: SwiGLU, bias rows, residual add.

// gate = silu(gate) * up  (silu(g) = g / (1 + e^-g)), as CpuOps::swiglu.
extern "C" __global__ void swiglu_f32(float* gate, const float* up, int n) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) {
        const float g = gate[i];
        gate[i] = g / (1.0f + expf(-g)) * up[i];
    }
}

// x[r][i] += b[i] for every row r of `len` values; n = rows * len.
extern "C" __global__ void add_bias_f32(float* x, const float* b, int len, int n) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] += b[i % len];
}

// x += y.
extern "C" __global__ void add_f32(float* x, const float* y, int n) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) x[i] += y[i];
}
