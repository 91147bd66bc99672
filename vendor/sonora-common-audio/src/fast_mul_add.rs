//! Classroom patch: `a * b + c` without a library call.
//!
//! `f32::mul_add` is one instruction only when the crate is compiled with the `fma` target
//! feature; for baseline x86-64 it becomes a call to the `fmaf` library routine per operation,
//! which costs more than the arithmetic and blocks vectorization. This keeps the fused
//! instruction when the build targets FMA and uses a plain multiply and add otherwise.

pub(crate) trait FastMulAdd {
    fn fast_mul_add(self, a: Self, b: Self) -> Self;
}

impl FastMulAdd for f32 {
    #[inline(always)]
    fn fast_mul_add(self, a: f32, b: f32) -> f32 {
        #[cfg(target_feature = "fma")]
        {
            self.mul_add(a, b)
        }
        #[cfg(not(target_feature = "fma"))]
        {
            self * a + b
        }
    }
}
