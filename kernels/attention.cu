// Causal scaled-dot-product attention over the KV cache, float path (CpuOps::attention).
// q: n_tokens x n_head x head_dim; k, v: positions x n_head_kv x head_dim (the cache);
// query t sees positions 0 .. pos0 + t. One block per (t, head); dynamic shared memory holds
// the query (head_dim floats) and the scores (pos0 + n_tokens floats).

extern "C" __global__ void attention_f32(const float* q, const float* k, const float* v, int n_head, int n_head_kv,
                                         int head_dim, int pos0, float scale, float* out) {
    extern __shared__ float sh[];
    __shared__ float red[32];
    const int t = blockIdx.x, h = blockIdx.y;
    const int kvh = h / (n_head / n_head_kv);
    const int n_ctx = pos0 + t + 1;
    const int kv_row = n_head_kv * head_dim;
    float* qs = sh;
    float* sc = sh + head_dim;
    const float* qh = q + ((size_t)t * n_head + h) * head_dim;
    for (int i = threadIdx.x; i < head_dim; i += blockDim.x) qs[i] = qh[i];
    __syncthreads();
    float mx = -INFINITY;
    for (int j = threadIdx.x; j < n_ctx; j += blockDim.x) {
        const float* kj = k + (size_t)j * kv_row + kvh * head_dim;
        float s = 0.0f;
        for (int i = 0; i < head_dim; ++i) s += qs[i] * kj[i];
        s *= scale;
        sc[j] = s;
        mx = fmaxf(mx, s);
    }
    mx = block_max(mx, red);
    float sum = 0.0f;
    for (int j = threadIdx.x; j < n_ctx; j += blockDim.x) {
        const float e = expf(sc[j] - mx);
        sc[j] = e;
        sum += e;
    }
    sum = block_sum(sum, red);
    const float inv = 1.0f / sum;
    __syncthreads();
    float* oh = out + ((size_t)t * n_head + h) * head_dim;
    for (int i = threadIdx.x; i < head_dim; i += blockDim.x) {
        float acc = 0.0f;
        for (int j = 0; j < n_ctx; ++j) acc += sc[j] * inv * v[(size_t)j * kv_row + kvh * head_dim + i];
        oh[i] = acc;
    }
}
