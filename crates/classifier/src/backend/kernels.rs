//! Fused CPU kernels for the BERT encoder (`bert_encoder.rs`), with plain candle fallbacks on
//! other devices.
//!
//! candle runs a BERT layer as ~20 separate element-wise passes, and two of them are slow on
//! CPU: `gelu_erf` calls scalar `erff` per element and the attention softmax is the generic
//! five-pass one. Here each step after a matrix product is one pass over memory:
//!
//! * [`bias_gelu`]: `gelu(x + bias)` with exact-form GELU, `erf` from a rational approximation
//!   (max abs error 3.3e-7 vs libm) that vectorizes;
//! * [`add_layer_norm`]: `layer_norm(x + bias + residual)` (this and [`bias_gelu`] in place on
//!   `x`, a fresh matrix product: no second buffer to zero and pull through the caches);
//! * [`matmul`]: `x @ w` as one `gemm` call into an output buffer that is not zeroed first;
//! * [`attention`]: from the fused QKV projection to the merged heads: per (document, head) it
//!   adds the biases, computes `q k^T` over the document's real tokens only (padded positions
//!   are skipped, not masked), a fused softmax with a vectorized `exp`, and `p v` written straight into
//!   the `(tokens, hidden)` output, with (document, head) units spread over rayon's pool.
//!
//! Vector code: the row kernels are plain loops written so that LLVM vectorizes them, compiled
//! three times (AVX-512, AVX2+FMA, baseline) and chosen at run time, like gemm's own dispatch.
//! On devices other than the CPU the same maths runs as ordinary candle ops.

use candle_core::{CpuStorage, DType, Layout, Result, Shape, Tensor};

/// Work (in elements) below which a kernel runs on the calling thread only.
const PARALLEL_MIN: usize = 32 * 1024;

/// A raw output pointer shared by the pool's threads, each writing disjoint rows.
#[derive(Clone, Copy)]
struct SharedOut(*mut f32);
// SAFETY: every user writes disjoint element ranges and the pool joins before the buffer is used.
unsafe impl Send for SharedOut {}
unsafe impl Sync for SharedOut {}

impl SharedOut {
    /// The pointer `offset` elements in (a method, so closures capture the `Sync` wrapper).
    ///
    /// # Safety
    /// `offset` must lie inside the buffer.
    unsafe fn at(self, offset: usize) -> *mut f32 {
        self.0.add(offset)
    }
}

/// Runs `f` over `0..units`, split over rayon's global pool when the work is large enough.
///
/// rayon, not candle's element-wise pool: candle's matrix products run on rayon's threads, and
/// the element-wise pool's workers spin for a while after each op, competing with them for cores.
fn for_units(units: usize, work: usize, f: impl Fn(std::ops::Range<usize>) + Sync) {
    let threads = rayon::current_num_threads();
    if work < PARALLEL_MIN || units < 2 || threads < 2 {
        f(0..units);
        return;
    }
    // A few pieces per thread balance uneven units (documents of different lengths).
    let piece = units.div_ceil(threads * 4).max(1);
    use rayon::prelude::*;
    (0..units.div_ceil(piece))
        .into_par_iter()
        .for_each(|i| f(i * piece..units.min((i + 1) * piece)));
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Simd {
    Baseline,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

fn simd() -> Simd {
    #[cfg(target_arch = "x86_64")]
    {
        static LEVEL: std::sync::OnceLock<Simd> = std::sync::OnceLock::new();
        *LEVEL.get_or_init(|| {
            if is_x86_feature_detected!("avx512f")
                && is_x86_feature_detected!("avx2")
                && is_x86_feature_detected!("fma")
            {
                Simd::Avx512
            } else if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                Simd::Avx2
            } else {
                Simd::Baseline
            }
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    Simd::Baseline
}

/// Defines `$name(args)` that runs `$body::<FMA>(args)` compiled for the best instruction set.
macro_rules! multiversion {
    ($name:ident => $body:ident ( $($arg:ident : $ty:ty),* )) => {
        fn $name($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            {
                #[target_feature(enable = "avx512f,avx2,fma")]
                unsafe fn avx512($($arg: $ty),*) {
                    $body::<true>($($arg),*)
                }
                #[target_feature(enable = "avx2,fma")]
                unsafe fn avx2($($arg: $ty),*) {
                    $body::<true>($($arg),*)
                }
                match simd() {
                    // SAFETY: the CPU has these features (checked at run time by `simd`).
                    Simd::Avx512 => return unsafe { avx512($($arg),*) },
                    Simd::Avx2 => return unsafe { avx2($($arg),*) },
                    Simd::Baseline => {}
                }
            }
            $body::<false>($($arg),*)
        }
    };
}

/// `a * b + c`, fused where the instruction exists (without FMA, `mul_add` would call libm).
#[inline(always)]
fn madd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// erf(x) as a rational function (Eigen's and XLA's f32 approximation): max abs error 3.3e-7.
#[inline(always)]
fn erf<const FMA: bool>(x: f32) -> f32 {
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = madd::<FMA>(x2, -2.726_142_3e-10, 2.770_681_4e-8);
    p = madd::<FMA>(x2, p, -2.101_024e-6);
    p = madd::<FMA>(x2, p, -5.692_506_4e-5);
    p = madd::<FMA>(x2, p, -7.349_906_3e-4);
    p = madd::<FMA>(x2, p, -2.954_6e-3);
    p = madd::<FMA>(x2, p, -1.609_603_3e-2);
    let mut q = madd::<FMA>(x2, -1.456_607_2e-5, -2.133_740_6e-4);
    q = madd::<FMA>(x2, q, -1.682_827e-3);
    q = madd::<FMA>(x2, q, -7.373_329e-3);
    q = madd::<FMA>(x2, q, -1.426_474e-2);
    x * p / q
}

/// e^x for x <= 0 (softmax arguments), Cephes' polynomial: ~1 ulp; below -87.3 it returns ~1e-38.
#[inline(always)]
fn exp_nonpositive<const FMA: bool>(x: f32) -> f32 {
    const ROUND: f32 = 12_582_912.0; // 1.5 * 2^23: adding it rounds to an integer
    let x = if x > -87.3 { x } else { -87.3 };
    let shifted = x * std::f32::consts::LOG2_E + ROUND;
    let n = shifted - ROUND;
    // The rounded integer sits in the low mantissa bits of `shifted`: 2^n without a conversion.
    let exponent = shifted
        .to_bits()
        .wrapping_sub(ROUND.to_bits())
        .wrapping_add(127)
        << 23;
    let r = madd::<FMA>(n, -0.693_359_4, x);
    let r = madd::<FMA>(n, 2.121_944_4e-4, r);
    let mut p = madd::<FMA>(1.987_569_1e-4, r, 1.398_2e-3);
    p = madd::<FMA>(p, r, 8.333_452e-3);
    p = madd::<FMA>(p, r, 4.166_579_6e-2);
    p = madd::<FMA>(p, r, 0.166_666_65);
    p = madd::<FMA>(p, r, 0.5);
    let y = madd::<FMA>(p, r * r, r) + 1.0;
    y * f32::from_bits(exponent)
}

/// Vector lanes the row reductions accumulate in (keeps sums vectorized and their order fixed).
const LANES: usize = 16;

#[inline(always)]
fn lane_sum(lanes: [f32; LANES]) -> f32 {
    lanes.iter().sum()
}

#[inline(always)]
fn gelu_rows_body<const FMA: bool>(rows: &mut [f32], bias: &[f32]) {
    for row in rows.chunks_exact_mut(bias.len()) {
        for (o, &b) in row.iter_mut().zip(bias) {
            let v = *o + b;
            *o = 0.5 * v * (1.0 + erf::<FMA>(v * std::f32::consts::FRAC_1_SQRT_2));
        }
    }
}
multiversion!(gelu_rows => gelu_rows_body(rows: &mut [f32], bias: &[f32]));

#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn add_layer_norm_rows_body<const FMA: bool>(
    rows: &mut [f32],
    residual: &[f32],
    bias: &[f32],
    gamma: &[f32],
    beta: &[f32],
    eps: f32,
) {
    let n = bias.len();
    for (out, r) in rows.chunks_exact_mut(n).zip(residual.chunks_exact(n)) {
        let mut sum = [0f32; LANES];
        for (i, (o, (&r, &b))) in out.iter_mut().zip(r.iter().zip(bias)).enumerate() {
            *o = *o + r + b;
            sum[i % LANES] += *o;
        }
        let mean = lane_sum(sum) / n as f32;
        let mut squares = [0f32; LANES];
        for (i, &o) in out.iter().enumerate() {
            let d = o - mean;
            squares[i % LANES] = madd::<FMA>(d, d, squares[i % LANES]);
        }
        let inv = 1.0 / (lane_sum(squares) / n as f32 + eps).sqrt();
        for ((o, &g), &b) in out.iter_mut().zip(gamma).zip(beta) {
            *o = madd::<FMA>((*o - mean) * inv, g, b);
        }
    }
}
multiversion!(add_layer_norm_rows => add_layer_norm_rows_body(
    rows: &mut [f32], residual: &[f32], bias: &[f32], gamma: &[f32], beta: &[f32], eps: f32
));

/// Softmax of each row of `scores` (`rows × keys`), in place; keys whose `keep` is 0 get 0.
#[inline(always)]
fn softmax_rows_body<const FMA: bool>(scores: &mut [f32], keep: &[f32]) {
    let keys = keep.len();
    let all_kept = keep.iter().all(|&k| k != 0.0);
    for row in scores.chunks_exact_mut(keys) {
        if !all_kept {
            for (s, &k) in row.iter_mut().zip(keep) {
                if k == 0.0 {
                    *s = f32::NEG_INFINITY;
                }
            }
        }
        // Whole vectors first (fixed lanes vectorize; `>` instead of `f32::max`, which would
        // add NaN handling), then the tail.
        let mut lanes = [f32::NEG_INFINITY; LANES];
        let mut chunks = row.chunks_exact(LANES);
        for chunk in &mut chunks {
            for (m, &v) in lanes.iter_mut().zip(chunk) {
                *m = if v > *m { v } else { *m };
            }
        }
        let mut max = f32::NEG_INFINITY;
        for &v in lanes.iter().chain(chunks.remainder()) {
            max = if v > max { v } else { max };
        }
        let mut sums = [0f32; LANES];
        let mut chunks = row.chunks_exact_mut(LANES);
        for chunk in &mut chunks {
            for (sum, v) in sums.iter_mut().zip(chunk) {
                // -inf - max is -inf; exp_nonpositive clamps it to ~1e-38: zeroed below.
                *v = exp_nonpositive::<FMA>(*v - max);
                *sum += *v;
            }
        }
        let mut sum = lane_sum(sums);
        for v in chunks.into_remainder() {
            *v = exp_nonpositive::<FMA>(*v - max);
            sum += *v;
        }
        if !all_kept {
            for (s, &k) in row.iter_mut().zip(keep) {
                if k == 0.0 {
                    *s = 0.0;
                }
            }
        }
        let inv = 1.0 / sum;
        for s in row.iter_mut() {
            *s *= inv;
        }
    }
}
multiversion!(softmax_rows => softmax_rows_body(scores: &mut [f32], keep: &[f32]));

/// The f32 slice of a contiguous CPU tensor.
fn contiguous_f32<'a>(storage: &'a CpuStorage, layout: &Layout, op: &str) -> Result<&'a [f32]> {
    let CpuStorage::F32(data) = storage else {
        candle_core::bail!("{op}: expected f32")
    };
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&data[start..end]),
        None => candle_core::bail!("{op}: input must be contiguous"),
    }
}

/// The f32 slice of a contiguous CPU tensor, to overwrite in place.
fn contiguous_f32_mut<'a>(
    storage: &'a mut CpuStorage,
    layout: &Layout,
    op: &str,
) -> Result<&'a mut [f32]> {
    let CpuStorage::F32(data) = storage else {
        candle_core::bail!("{op}: expected f32")
    };
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&mut data[start..end]),
        None => candle_core::bail!("{op}: input must be contiguous"),
    }
}

/// Runs `row_kernel(first_row..end_row, those rows of data)` over the rows of `width` in
/// `data`, in parallel, in place. In place, not into a new buffer: the kernels' inputs are
/// fresh matrix products nothing else reads, and a new output buffer had to be zeroed first
/// (that memset was 3% of the encoder's time) and pulled another copy through the caches.
fn for_rows_mut(
    data: &mut [f32],
    width: usize,
    row_kernel: impl Fn(std::ops::Range<usize>, &mut [f32]) + Sync,
) {
    let rows = data.len() / width;
    let ptr = SharedOut(data.as_mut_ptr());
    for_units(rows, rows * width, |range| {
        // SAFETY: ranges of rows are disjoint and inside `data`, which outlives the pool's
        // join.
        let slice = unsafe {
            std::slice::from_raw_parts_mut(ptr.at(range.start * width), range.len() * width)
        };
        row_kernel(range, slice);
    });
}

struct BiasGelu<'a> {
    bias: &'a [f32],
}

impl candle_core::InplaceOp1 for BiasGelu<'_> {
    fn name(&self) -> &'static str {
        "bias-gelu"
    }

    fn cpu_fwd(&self, storage: &mut CpuStorage, layout: &Layout) -> Result<()> {
        let x = contiguous_f32_mut(storage, layout, self.name())?;
        let width = self.bias.len();
        if x.len() % width != 0 {
            candle_core::bail!("bias-gelu: shape {:?}, bias {width}", layout.shape())
        }
        for_rows_mut(x, width, |_, rows| gelu_rows(rows, self.bias));
        Ok(())
    }
}

/// A tensor's values on the CPU, kept beside it for the CPU kernels.
#[derive(Clone)]
pub(crate) struct Param {
    pub tensor: Tensor,
    values: Vec<f32>,
}

impl Param {
    pub fn new(tensor: Tensor) -> Result<Self> {
        let values = tensor.flatten_all()?.to_dtype(DType::F32)?.to_vec1()?;
        Ok(Param { tensor, values })
    }
}

/// `gelu(x + bias)` over the last dimension, exact (erf) GELU as in PyTorch's `gelu`. On the
/// CPU it overwrites `x`'s storage (shared with any clone of `x`): pass a tensor nothing else
/// reads.
pub(crate) fn bias_gelu(x: Tensor, bias: &Param) -> Result<Tensor> {
    if x.device().is_cpu() && x.dtype() == DType::F32 {
        let x = x.contiguous()?;
        x.inplace_op1(&BiasGelu { bias: &bias.values })?;
        Ok(x)
    } else {
        x.broadcast_add(&bias.tensor)?.gelu_erf()
    }
}

struct AddLayerNorm<'a> {
    bias: &'a [f32],
    gamma: &'a [f32],
    beta: &'a [f32],
    eps: f32,
}

impl candle_core::InplaceOp2 for AddLayerNorm<'_> {
    fn name(&self) -> &'static str {
        "add-layer-norm"
    }

    fn cpu_fwd(
        &self,
        dst: &mut CpuStorage,
        dst_layout: &Layout,
        src: &CpuStorage,
        src_layout: &Layout,
    ) -> Result<()> {
        let x = contiguous_f32_mut(dst, dst_layout, self.name())?;
        let residual = contiguous_f32(src, src_layout, self.name())?;
        let width = self.bias.len();
        if x.len() != residual.len() || x.len() % width != 0 {
            candle_core::bail!(
                "add-layer-norm: shapes {:?} and {:?}",
                dst_layout.shape(),
                src_layout.shape()
            )
        }
        for_rows_mut(x, width, |range, rows| {
            add_layer_norm_rows(
                rows,
                &residual[range.start * width..range.end * width],
                self.bias,
                self.gamma,
                self.beta,
                self.eps,
            )
        });
        Ok(())
    }
}

/// `layer_norm(x + bias + residual) * gamma + beta` over the last dimension. On the CPU it
/// overwrites `x`'s storage (shared with any clone of `x`): pass a tensor nothing else reads.
pub(crate) fn add_layer_norm(
    x: Tensor,
    residual: &Tensor,
    bias: &Param,
    gamma: &Param,
    beta: &Param,
    eps: f64,
) -> Result<Tensor> {
    if x.device().is_cpu() && x.dtype() == DType::F32 {
        let x = x.contiguous()?;
        x.inplace_op2(
            &residual.contiguous()?,
            &AddLayerNorm {
                bias: &bias.values,
                gamma: &gamma.values,
                beta: &beta.values,
                eps: eps as f32,
            },
        )?;
        Ok(x)
    } else {
        let sum = (x.broadcast_add(&bias.tensor)? + residual)?;
        candle_nn::ops::layer_norm(&sum, &gamma.tensor, &beta.tensor, eps as f32)
    }
}

/// `x (rows, k) @ w (k, n)`, both contiguous.
struct Matmul;

impl candle_core::CustomOp2 for Matmul {
    fn name(&self) -> &'static str {
        "matmul"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let x = contiguous_f32(s1, l1, self.name())?;
        let w = contiguous_f32(s2, l2, self.name())?;
        let ((rows, k), (depth, n)) = (l1.shape().dims2()?, l2.shape().dims2()?);
        if k != depth {
            candle_core::bail!("matmul: shapes {:?} and {:?}", l1.shape(), l2.shape())
        }
        if k == 0 {
            return Ok((CpuStorage::F32(vec![0.0; rows * n]), Shape::from((rows, n))));
        }
        let threads = candle_core::utils::get_num_threads();
        let parallelism = if threads > 1 {
            gemm::Parallelism::Rayon(threads)
        } else {
            gemm::Parallelism::None
        };
        let mut out: Vec<f32> = Vec::with_capacity(rows * n);
        // SAFETY: the strides describe `x` (rows × k), `w` (k × n) and `out` (rows × n), all
        // row-major and in bounds; with `read_dst` false (and alpha 0) gemm writes every element
        // of `out` without reading it, so it may start uninitialized.
        unsafe {
            gemm::gemm(
                rows,
                n,
                k,
                out.as_mut_ptr(),
                1,
                n as isize,
                false,
                x.as_ptr(),
                1,
                k as isize,
                w.as_ptr(),
                1,
                n as isize,
                0.0,
                1.0,
                false,
                false,
                false,
                parallelism,
            );
            out.set_len(rows * n);
        }
        Ok((CpuStorage::F32(out), Shape::from((rows, n))))
    }
}

/// `x (rows, k) @ w (k, n)`: on the CPU, candle's `gemm` call without zeroing the output first
/// (that memset was 4% of the encoder's time); elsewhere candle's matmul.
pub(crate) fn matmul(x: &Tensor, w: &Tensor) -> Result<Tensor> {
    if x.device().is_cpu() && x.dtype() == DType::F32 && w.dtype() == DType::F32 {
        x.contiguous()?.apply_op2_no_bwd(&w.contiguous()?, &Matmul)
    } else {
        x.matmul(w)
    }
}

/// Multi-head self-attention from the QKV projection (without its bias) to the merged heads.
pub(crate) struct Attention<'a> {
    /// Bias of the fused projection: query, key and value biases, each `hidden` long.
    pub qkv_bias: &'a Param,
    pub heads: usize,
    pub batch: usize,
    pub seq: usize,
}

impl Attention<'_> {
    fn head_dim(&self, hidden: usize) -> usize {
        hidden / self.heads
    }
}

impl candle_core::CustomOp2 for Attention<'_> {
    fn name(&self) -> &'static str {
        "bert-attention"
    }

    fn cpu_fwd(
        &self,
        s1: &CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> Result<(CpuStorage, Shape)> {
        let qkv = contiguous_f32(s1, l1, self.name())?;
        let keep = contiguous_f32(s2, l2, self.name())?;
        let (b, s, heads) = (self.batch, self.seq, self.heads);
        let hidden = self.qkv_bias.values.len() / 3;
        let d = self.head_dim(hidden);
        if qkv.len() != b * s * 3 * hidden || keep.len() != b * s || d * heads != hidden {
            candle_core::bail!(
                "bert-attention: shapes {:?} and {:?}",
                l1.shape(),
                l2.shape()
            )
        }
        let bias = &self.qkv_bias.values;
        let scale = 1.0 / (d as f32).sqrt();
        // Positions after a document's last real token are padding: leave them out of the
        // products. Padded queries' outputs stay zero: nothing downstream reads them (keys are
        // masked in every layer, and pooling and heads use real positions only).
        let keys: Vec<usize> = keep
            .chunks_exact(s)
            .map(|m| m.iter().rposition(|&k| k != 0.0).map_or(s, |last| last + 1))
            .collect();
        let mut out = vec![0f32; b * s * hidden];
        let ptr = SharedOut(out.as_mut_ptr());
        for_units(b * heads, b * s * s * hidden, |units| {
            let mut q = vec![0f32; s * d];
            let mut k = vec![0f32; s * d];
            let mut v = vec![0f32; s * d];
            let mut scores = vec![0f32; s * s];
            for unit in units {
                let (doc, head) = (unit / heads, unit % heads);
                let l = keys[doc];
                let rows = &qkv[doc * s * 3 * hidden..(doc + 1) * s * 3 * hidden];
                for t in 0..l {
                    let row = &rows[t * 3 * hidden..(t + 1) * 3 * hidden];
                    for (part, out) in [&mut q, &mut k, &mut v].into_iter().enumerate() {
                        let at = part * hidden + head * d;
                        let pairs = row[at..at + d].iter().zip(&bias[at..at + d]);
                        let out = &mut out[t * d..(t + 1) * d];
                        if part == 0 {
                            for (o, (&x, &b)) in out.iter_mut().zip(pairs) {
                                *o = (x + b) * scale;
                            }
                        } else {
                            for (o, (&x, &b)) in out.iter_mut().zip(pairs) {
                                *o = x + b;
                            }
                        }
                    }
                }
                let scores = &mut scores[..l * l];
                // SAFETY: the pointers and strides describe `q` (l×d), `k` read as its
                // transpose (d×l) and `scores` (l×l), all in bounds.
                unsafe {
                    gemm::gemm(
                        l,
                        l,
                        d,
                        scores.as_mut_ptr(),
                        1,
                        l as isize,
                        false,
                        q.as_ptr(),
                        1,
                        d as isize,
                        k.as_ptr(),
                        d as isize,
                        1,
                        0.0,
                        1.0,
                        false,
                        false,
                        false,
                        gemm::Parallelism::None,
                    );
                }
                softmax_rows(scores, &keep[doc * s..doc * s + l]);
                // SAFETY: `scores` (l×l) times `v` (l×d) goes into the l×d block of this
                // document's rows and this head's columns of `out` (row stride `hidden`); no
                // other unit writes that block.
                unsafe {
                    gemm::gemm(
                        l,
                        d,
                        l,
                        ptr.at(doc * s * hidden + head * d),
                        1,
                        hidden as isize,
                        false,
                        scores.as_ptr(),
                        1,
                        l as isize,
                        v.as_ptr(),
                        1,
                        d as isize,
                        0.0,
                        1.0,
                        false,
                        false,
                        false,
                        gemm::Parallelism::None,
                    );
                }
            }
        });
        Ok((CpuStorage::F32(out), Shape::from((b * s, hidden))))
    }
}

/// Self-attention: `qkv` is `(batch × seq, 3 × hidden)` (the fused projection without bias),
/// `keep` is `(batch, seq)` f32, 1 for real tokens. Returns `(batch × seq, hidden)`.
pub(crate) fn attention(qkv: &Tensor, keep: &Tensor, op: &Attention) -> Result<Tensor> {
    if qkv.device().is_cpu() && qkv.dtype() == DType::F32 {
        return qkv
            .contiguous()?
            .apply_op2_no_bwd(&keep.to_dtype(DType::F32)?.contiguous()?, op);
    }
    attention_ops(qkv, keep, op)
}

/// [`attention`] as ordinary candle ops, for devices without the CPU kernel.
fn attention_ops(qkv: &Tensor, keep: &Tensor, op: &Attention) -> Result<Tensor> {
    let (b, s, heads) = (op.batch, op.seq, op.heads);
    let hidden = qkv.dim(1)? / 3;
    let d = op.head_dim(hidden);
    let qkv = qkv
        .broadcast_add(&op.qkv_bias.tensor)?
        .reshape((b, s, 3, heads, d))?;
    let part = |i: usize| -> Result<Tensor> {
        qkv.narrow(2, i, 1)?
            .squeeze(2)?
            .transpose(1, 2)?
            .contiguous()
    };
    let q = (part(0)? * (1.0 / (d as f64).sqrt()))?;
    let (k, v) = (part(1)?, part(2)?);
    let keep = keep.to_dtype(q.dtype())?;
    let masked = ((keep.ones_like()? - &keep)? * f64::from(f32::MIN))?.reshape((b, 1, 1, s))?;
    let scores = q.matmul(&k.t()?)?.broadcast_add(&masked)?;
    let probs = candle_nn::ops::softmax_last_dim(&scores)?;
    probs
        .matmul(&v)?
        .transpose(1, 2)?
        .contiguous()?
        .reshape((b * s, hidden))
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .flatten_all()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar::<f32>()
            .unwrap()
    }

    fn random(shape: &[usize], seed: u64) -> Tensor {
        let n: usize = shape.iter().product();
        let mut state = seed;
        let values: Vec<f32> = (0..n)
            .map(|_| {
                state = state
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                ((state >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 6.0
            })
            .collect();
        Tensor::from_vec(values, shape, &Device::Cpu).unwrap()
    }

    #[test]
    fn erf_and_exp_match_libm() {
        let mut worst_erf = 0f32;
        let mut worst_exp = 0f32;
        for i in -120_000i32..=120_000 {
            let x = i as f32 / 20_000.0;
            for fma in [false, true] {
                let e = if fma { erf::<true>(x) } else { erf::<false>(x) };
                worst_erf = worst_erf.max((e - libm_erf(x)).abs());
            }
            let y = -(i.abs() as f32) / 1_000.0; // 0 down to -120
            let e = exp_nonpositive::<true>(y);
            let rel = (e - y.exp()).abs() / y.exp().max(f32::MIN_POSITIVE);
            if y > -87.0 {
                worst_exp = worst_exp.max(rel);
            } else {
                assert!(e < 2e-38, "exp({y}) = {e}");
            }
        }
        assert!(worst_erf < 5e-7, "erf error {worst_erf}");
        assert!(worst_exp < 5e-7, "exp relative error {worst_exp}");
    }

    /// erf from f64 (Abramowitz–Stegun 7.1.28 would be too coarse; use the series/continued
    /// fraction through libm's `erf` via the complementary relation with `exp`).
    fn libm_erf(x: f32) -> f32 {
        // High-precision reference: Taylor series for |x| < 3, asymptotic 1 above (f32 rounds
        // erf(3..) to within 2.2e-5 of 1, and the series converges well in f64 up to 4).
        let x = f64::from(x);
        if x.abs() > 4.5 {
            return x.signum() as f32;
        }
        let mut term = x;
        let mut sum = x;
        for n in 1..200 {
            term *= -x * x / n as f64;
            sum += term / (2 * n + 1) as f64;
        }
        (sum * 2.0 / std::f64::consts::PI.sqrt()) as f32
    }

    #[test]
    fn bias_gelu_matches_candle() {
        let x = random(&[37, 48], 1);
        let bias = Param::new(random(&[48], 2)).unwrap();
        let plain = x.broadcast_add(&bias.tensor).unwrap().gelu_erf().unwrap();
        let fused = bias_gelu(x, &bias).unwrap();
        assert!(max_diff(&fused, &plain) < 2e-6);
        // Large enough to run on the thread pool.
        let x = random(&[700, 96], 3);
        let bias = Param::new(random(&[96], 4)).unwrap();
        let plain = x.broadcast_add(&bias.tensor).unwrap().gelu_erf().unwrap();
        let fused = bias_gelu(x, &bias).unwrap();
        assert!(max_diff(&fused, &plain) < 2e-6);
    }

    #[test]
    fn add_layer_norm_matches_candle() {
        let x = random(&[700, 40], 5);
        let residual = random(&[700, 40], 6);
        let [bias, gamma, beta] = [7, 8, 9].map(|s| Param::new(random(&[40], s)).unwrap());
        let sum = (x.broadcast_add(&bias.tensor).unwrap() + &residual).unwrap();
        let fused = add_layer_norm(x, &residual, &bias, &gamma, &beta, 1e-12).unwrap();
        let plain =
            candle_nn::ops::layer_norm_slow(&sum, &gamma.tensor, &beta.tensor, 1e-12).unwrap();
        assert!(
            max_diff(&fused, &plain) < 1e-5,
            "{}",
            max_diff(&fused, &plain)
        );
    }

    #[test]
    fn attention_matches_the_generic_path_with_padding() {
        let (b, s, heads, d) = (3, 20, 4, 8);
        let hidden = heads * d;
        let qkv = random(&[b * s, 3 * hidden], 10);
        let bias = Param::new(random(&[3 * hidden], 11)).unwrap();
        // Document 0 full, 1 right-padded, 2 with a hole in the middle.
        let mut keep = vec![1f32; b * s];
        keep[s + 13..2 * s].fill(0.0);
        keep[2 * s + 5] = 0.0;
        keep[2 * s + 17..3 * s].fill(0.0);
        let keep = Tensor::from_vec(keep, (b, s), &Device::Cpu).unwrap();
        let op = Attention {
            qkv_bias: &bias,
            heads,
            batch: b,
            seq: s,
        };
        let fused = attention(&qkv, &keep, &op).unwrap();
        let plain = attention_ops(&qkv, &keep, &op).unwrap();
        assert_eq!(fused.dims(), &[b * s, hidden]);
        // Real positions (up to each document's last real token) agree; padded ones are zero.
        for (doc, real) in [(0, s), (1, 13), (2, 17)] {
            let rows =
                |t: &Tensor, from: usize, len: usize| t.narrow(0, doc * s + from, len).unwrap();
            let diff = max_diff(&rows(&fused, 0, real), &rows(&plain, 0, real));
            assert!(diff < 1e-5, "document {doc}: {diff}");
            if real < s {
                let padded = rows(&fused, real, s - real);
                assert_eq!(max_diff(&padded, &padded.zeros_like().unwrap()), 0.0);
            }
        }
    }
}
