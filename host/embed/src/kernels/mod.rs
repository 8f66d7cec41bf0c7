//! The numeric kernels of the BERT forward pass: the dense layer, attention and the
//! element-wise operations.

/// Defines `pub fn $name(kernel: Kernel, args..)` that runs `$imp(args..)` compiled for
/// AVX2 when `kernel` is [`Kernel::Avx2Fma`](linear::Kernel::Avx2Fma) (so the compiler
/// vectorises it 8 wide instead of the 4-wide SSE2 baseline), else the baseline build. `$imp`
/// must be `#[inline(always)]` (and so must what it calls) for the AVX2 build to cover it.
/// No FMA contraction happens either way, so both builds give the same bits.
macro_rules! simd_dispatch {
    ($(#[$doc:meta])* pub fn $name:ident($($arg:ident: $ty:ty),* $(,)?) => $imp:path) => {
        $(#[$doc])*
        pub fn $name(kernel: $crate::kernels::linear::Kernel, $($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            if kernel == $crate::kernels::linear::Kernel::Avx2Fma {
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2($($arg: $ty),*) {
                    $imp($($arg),*)
                }
                // SAFETY: `Kernel::Avx2Fma` is only chosen after run-time detection of AVX2
                // and FMA.
                return unsafe { avx2($($arg),*) };
            }
            let _ = kernel;
            $imp($($arg),*)
        }
    };
}

pub mod attention;
pub mod linear;
pub mod ops;
