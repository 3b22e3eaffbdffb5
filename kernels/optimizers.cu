// The optimisers' updates, fused into one pass over each parameter and its state, in place.
// The formulas are those of minigan/optim (which are PyTorch's), element by element:
//
//   Adam     g = grad + wd p  (L2), or first p = p (1 - lr wd)  (decoupled, AdamW)
//            m = b1 m + (1 - b1) g,   v = b2 v + (1 - b2) g^2
//            p = p - step_size m / (sqrt(v) / bias2_sqrt + eps)
//            with step_size = lr / (1 - b1^t) and bias2_sqrt = sqrt(1 - b2^t) for step t
//   RMSprop  g = grad + wd p,   s = alpha s + (1 - alpha) g^2,   p = p - lr g / (sqrt(s) + eps)
//   SGD      g = grad + wd p,   buf = momentum buf + g,   p = p - lr buf     (momentum, no dampening,
//                                                                            after the first step)
//
// Entry points (extern "C"), each for float (_f32) and double (_f64), over `size` elements of
// C-contiguous arrays of one dtype; any grid of 1-D blocks (a grid-stride loop covers the rest):
//   adam_step_*(p, grad, m, v, size, lr, b1, b2, eps, wd, decoupled, step_size, bias2_sqrt)
//   rmsprop_step_*(p, grad, s, size, lr, alpha, eps, wd)
//   sgd_momentum_step_*(p, grad, buf, size, lr, momentum, wd)

template <typename T>
__device__ void adam_step(T *p, const T *grad, T *m, T *v, long long size, T lr, T b1, T b2, T eps, T wd,
                          int decoupled, T step_size, T bias2_sqrt) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < size;
         i += (long long)gridDim.x * blockDim.x) {
        T g = grad[i], w = p[i];
        if (decoupled) w *= T(1) - lr * wd;
        else g += wd * w;
        const T mi = b1 * m[i] + (T(1) - b1) * g;
        const T vi = b2 * v[i] + (T(1) - b2) * (g * g);
        m[i] = mi;
        v[i] = vi;
        p[i] = w - step_size * (mi / (sqrt(vi) / bias2_sqrt + eps));
    }
}

template <typename T>
__device__ void rmsprop_step(T *p, const T *grad, T *s, long long size, T lr, T alpha, T eps, T wd) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < size;
         i += (long long)gridDim.x * blockDim.x) {
        const T g = grad[i] + wd * p[i];
        const T si = alpha * s[i] + (T(1) - alpha) * (g * g);
        s[i] = si;
        p[i] -= lr * (g / (sqrt(si) + eps));
    }
}

template <typename T>
__device__ void sgd_momentum_step(T *p, const T *grad, T *buf, long long size, T lr, T momentum, T wd) {
    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < size;
         i += (long long)gridDim.x * blockDim.x) {
        const T g = grad[i] + wd * p[i];
        const T b = momentum * buf[i] + g;
        buf[i] = b;
        p[i] -= lr * b;
    }
}

// ---- entry points -------------------------------------------------------------------------------

// m = b1 m + (1 - b1) g, v = b2 v + (1 - b2) g^2, p -= step_size m / (sqrt(v) / bias2_sqrt + eps)
extern "C" __global__ void adam_step_f32(float *p, const float *grad, float *m, float *v, long long size,
                                         float lr, float b1, float b2, float eps, float wd, int decoupled,
                                         float step_size, float bias2_sqrt) {
    adam_step(p, grad, m, v, size, lr, b1, b2, eps, wd, decoupled, step_size, bias2_sqrt);
}
extern "C" __global__ void adam_step_f64(double *p, const double *grad, double *m, double *v, long long size,
                                         double lr, double b1, double b2, double eps, double wd, int decoupled,
                                         double step_size, double bias2_sqrt) {
    adam_step(p, grad, m, v, size, lr, b1, b2, eps, wd, decoupled, step_size, bias2_sqrt);
}

// s = alpha s + (1 - alpha) g^2, p -= lr g / (sqrt(s) + eps), g = grad + wd p
extern "C" __global__ void rmsprop_step_f32(float *p, const float *grad, float *s, long long size, float lr,
                                            float alpha, float eps, float wd) {
    rmsprop_step(p, grad, s, size, lr, alpha, eps, wd);
}
extern "C" __global__ void rmsprop_step_f64(double *p, const double *grad, double *s, long long size, double lr,
                                            double alpha, double eps, double wd) {
    rmsprop_step(p, grad, s, size, lr, alpha, eps, wd);
}

// buf = momentum buf + g, p -= lr buf, g = grad + wd p
extern "C" __global__ void sgd_momentum_step_f32(float *p, const float *grad, float *buf, long long size,
                                                 float lr, float momentum, float wd) {
    sgd_momentum_step(p, grad, buf, size, lr, momentum, wd);
}
extern "C" __global__ void sgd_momentum_step_f64(double *p, const double *grad, double *buf, long long size,
                                                 double lr, double momentum, double wd) {
    sgd_momentum_step(p, grad, buf, size, lr, momentum, wd);
}
