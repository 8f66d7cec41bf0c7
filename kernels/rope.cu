// RoPE, float path, both layouts of the engine (model.rs RopeLayout):
//   layout 0 = Adjacent: pairs (x[2i], x[2i+1])   (llama GGUFs)
//   layout 1 = Halves:   pairs (x[i], x[i + d/2]) (NeoX, qwen2)
// Row r of x (n_heads * head_dim values) is at position pos0 + r. The angle of pair i is
// pos * theta_scale^i, built by the same sequence of f32 multiplications as CpuOps::rope, with
// theta_scale = base^(-2/head_dim) computed on the host.
// Grid: (rows, n_heads); block: head_dim / 2 threads (one per pair).

extern "C" __global__ void rope_f32(float* x, int pos0, int n_heads, int head_dim, int layout, float theta_scale) {
    const int row = blockIdx.x, h = blockIdx.y, i = threadIdx.x;
    const int half = head_dim / 2;
    if (i >= half) return;
    float theta = (float)(pos0 + row);
    for (int k = 0; k < i; ++k) theta *= theta_scale;
    float s, c;
    sincosf(theta, &s, &c);
    float* hp = x + ((size_t)row * n_heads + h) * head_dim;
    const int a = layout == 0 ? 2 * i : i;
    const int b = layout == 0 ? 2 * i + 1 : i + half;
    const float x0 = hp[a], x1 = hp[b];
    hp[a] = x0 * c - x1 * s;
    hp[b] = x0 * s + x1 * c;
}
