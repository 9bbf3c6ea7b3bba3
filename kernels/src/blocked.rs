//! Cache-blocked single-precision GEMM shared by `matmul::linear`, `matmul::matmul` and
//! `conv2d::conv2d`: C[rows, cols] = act(A[rows, depth] · B[depth, cols] + bias).
//!
//! The structure is the classic BLIS/Goto one. B is packed block by block (KC × NC) into
//! column panels of NR, A (MC × KC) into row panels of MR, both zero-padded to whole panels so
//! the micro-kernel never sees a ragged edge; only the store back into C is clipped. The
//! micro-kernel keeps an MR × NR tile of accumulators in a `[[f32; NR]; MR]` which, once fully
//! unrolled, LLVM holds in vector registers: NR is the vector direction (each packed B row is NR
//! contiguous floats, each A value is broadcast).
//!
//! There is one generic implementation; on x86-64 it is instantiated again inside
//! `#[target_feature]` functions (AVX2+FMA, AVX-512) and picked at run time, so the same source
//! autovectorises to whatever the machine has. On wasm32 (`+simd128`) and other targets the
//! portable instantiation is used, with a plain multiply and add (a fused `mul_add` would become
//! a libm call there).

use super::Activation;
use std::cell::RefCell;

/// Instruction-set variant of the kernels. `Isa::detect()` is what the public kernels use;
/// the others exist so tests and benchmarks can exercise and compare every path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Isa {
    /// Portable code (SSE2 on x86-64, simd128 on wasm32, NEON on aarch64): MR×NR = 4×8.
    Generic,
    /// x86-64 AVX2 + FMA: 6×16 (12 ymm accumulators).
    Avx2,
    /// x86-64 AVX-512F: 12×32 (24 zmm accumulators).
    Avx512,
}

impl Isa {
    /// The target features the variant's kernel is compiled with — exactly the
    /// `#[target_feature(enable = ...)]` list of its `x86::run_*` function (a unit test checks
    /// that they agree). The kernels are autovectorised generic code, no explicit intrinsics,
    /// so these are all they need; the variant runs only where the CPU reports every one.
    pub const fn required_features(self) -> &'static [&'static str] {
        match self {
            Isa::Generic => &[],
            Isa::Avx2 => &["avx2", "fma"],
            Isa::Avx512 => &["avx512f", "avx2", "fma"],
        }
    }

    /// Whether this CPU reports every feature of `required_features`.
    pub fn supported(self) -> bool {
        self.required_features().iter().all(|f| feature_detected(f))
    }

    /// The best variant this CPU supports.
    pub fn detect() -> Isa {
        [Isa::Avx512, Isa::Avx2].into_iter().find(|i| i.supported()).unwrap_or(Isa::Generic)
    }

    /// Every variant this CPU can run, portable first.
    pub fn available() -> Vec<Isa> {
        [Isa::Generic, Isa::Avx2, Isa::Avx512].into_iter().filter(|i| i.supported()).collect()
    }

    /// Falls back to `detect()` when asked for something the CPU cannot run.
    fn clamp_to_cpu(self) -> Isa {
        if self.supported() { self } else { Isa::detect() }
    }
}

/// Run-time detection of one feature named in `Isa::required_features`
/// (`is_x86_feature_detected!` takes only a literal, hence the match). Unknown names and
/// non-x86 targets report false, so a variant needing them is never selected.
fn feature_detected(name: &str) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        match name {
            "avx512f" => std::arch::is_x86_feature_detected!("avx512f"),
            "avx2" => std::arch::is_x86_feature_detected!("avx2"),
            "fma" => std::arch::is_x86_feature_detected!("fma"),
            _ => false,
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = name;
        false
    }
}

/// Reusable scratch memory: the packed panels and the convolution's im2col columns. Holding
/// one across calls (e.g. for a whole ODE solve) avoids re-allocating and re-faulting megabytes
/// on every layer. The plain kernels use a thread-local one.
#[derive(Debug, Default)]
pub struct Workspace {
    pack_a: Vec<f32>,
    pack_b: Vec<f32>,
    pub(crate) cols: Vec<f32>,
}

impl Workspace {
    pub fn new() -> Self {
        Self::default()
    }
}

thread_local! {
    static WORKSPACE: RefCell<Workspace> = RefCell::new(Workspace::default());
}

/// Runs `f` with this thread's workspace (a fresh one if it is already borrowed).
pub(crate) fn with_workspace<R>(f: impl FnOnce(&mut Workspace) -> R) -> R {
    WORKSPACE.with(|w| match w.try_borrow_mut() {
        Ok(mut w) => f(&mut w),
        Err(_) => f(&mut Workspace::default()),
    })
}

/// How B's element (p, j) is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BLayout {
    /// `b[p * ldb + j]` (a plain [depth, cols] matrix, im2col columns).
    RowMajor,
    /// `b[j * ldb + p]` (a PyTorch `Linear` weight [cols, depth] used as its transpose).
    Transposed,
    /// The im2col matrix of a stride-1 convolution, never built: `b` is the zero-padded image
    /// [c_in][hp][wp] (followed by at least [`B_SLACK`] floats), and b(p, j) = b[ci][oy + ky][ox + kx]
    /// for p = (ci·kh + ky)·kw + kx and j = oy·ow + ox, with ow = wp − kw + 1.
    Im2col(PaddedImage),
}

/// The geometry of [`BLayout::Im2col`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct PaddedImage {
    pub c_in: usize,
    pub hp: usize,
    pub wp: usize,
    pub kh: usize,
    pub kw: usize,
}

impl PaddedImage {
    fn ow(&self) -> usize {
        self.wp + 1 - self.kw
    }
}

/// Floats past the end of a padded image (and of the packed B buffer) that the im2col packing
/// may read (write): it moves whole NR-wide rows, NR ≤ 32.
pub(crate) const B_SLACK: usize = 32;

#[derive(Debug, Clone, Copy)]
pub(crate) enum Bias<'a> {
    None,
    /// One value per row of C (a convolution's output channel).
    PerRow(&'a [f32]),
    /// One value per column of C (a linear layer's output feature).
    PerCol(&'a [f32]),
}

/// One product. A is row-major with leading dimension `lda`; C row-major with `ldc`.
pub(crate) struct Gemm<'a> {
    pub rows: usize,
    pub cols: usize,
    pub depth: usize,
    pub a: &'a [f32],
    pub lda: usize,
    pub b: &'a [f32],
    pub ldb: usize,
    pub b_layout: BLayout,
    pub bias: Bias<'a>,
    pub act: Activation,
}

impl Gemm<'_> {
    fn check(&self, c: &[f32], ldc: usize) {
        let (r, n, k) = (self.rows, self.cols, self.depth);
        if r == 0 || n == 0 {
            return;
        }
        assert!(ldc >= n && c.len() >= (r - 1) * ldc + n, "gemm: C too small");
        if k > 0 {
            assert!(self.lda >= k && self.a.len() >= (r - 1) * self.lda + k, "gemm: A too small");
            match self.b_layout {
                BLayout::RowMajor => {
                    assert!(self.ldb >= n && self.b.len() >= (k - 1) * self.ldb + n, "gemm: B too small")
                }
                BLayout::Transposed => {
                    assert!(self.ldb >= k && self.b.len() >= (n - 1) * self.ldb + k, "gemm: B too small")
                }
                BLayout::Im2col(im) => {
                    let oh = im.hp + 1 - im.kh;
                    assert!(k == im.c_in * im.kh * im.kw && n == oh * im.ow(), "gemm: im2col geometry");
                    assert!(self.b.len() >= im.c_in * im.hp * im.wp + B_SLACK, "gemm: B too small")
                }
            }
        }
        match self.bias {
            Bias::None => {}
            Bias::PerRow(b) => assert!(b.len() == r, "gemm: bias length"),
            Bias::PerCol(b) => assert!(b.len() == n, "gemm: bias length"),
        }
    }

    /// C = act(A·B + bias), overwriting C.
    pub fn run(&self, isa: Isa, c: &mut [f32], ldc: usize, ws: &mut Workspace) {
        self.check(c, ldc);
        if self.rows == 0 || self.cols == 0 {
            return;
        }
        if self.depth == 0 {
            for i in 0..self.rows {
                let row = &mut c[i * ldc..i * ldc + self.cols];
                for (j, v) in row.iter_mut().enumerate() {
                    let b = match self.bias {
                        Bias::None => 0.0,
                        Bias::PerRow(b) => b[i],
                        Bias::PerCol(b) => b[j],
                    };
                    *v = self.act.apply(b);
                }
            }
            return;
        }
        // A linear layer down to one or two outputs: dot products, not panels padded to 8.
        #[cfg(target_arch = "wasm32")]
        if self.b_layout == BLayout::Transposed
            && self.cols <= 2
            && self.depth.is_multiple_of(4)
            && !matches!(self.bias, Bias::PerRow(_))
        {
            return wasm::linear_narrow(self, c, ldc);
        }
        match isa.clamp_to_cpu() {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `clamp_to_cpu` only returns Avx512 when the CPU reports all of its
            // `required_features` (avx512f, avx2, fma: the kernel's `target_feature` list).
            Isa::Avx512 => unsafe { x86::run_avx512(self, c, ldc, ws) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `clamp_to_cpu` only returns Avx2 when the CPU reports avx2 and fma.
            Isa::Avx2 => unsafe { x86::run_avx2(self, c, ldc, ws) },
            _ => run_generic::<4, 8, false>(self, c, ldc, ws, GENERIC_BLOCKS),
        }
    }
}

/// Cache blocking: KC (depth of a packed block), MC (rows of A per packed block), NC (columns
/// of B per packed block).
#[derive(Clone, Copy)]
struct Blocks {
    kc: usize,
    mc: usize,
    nc: usize,
}

// KC is chosen so a KC×NR packed B micro-panel (reused across every A micro-panel of the
// block) stays in a 32–48 KiB L1 next to the A micro-panel being streamed; MC×KC of packed A
// then fits comfortably in a ≥ 512 KiB L2, and KC×NC of packed B in L3. Sized from the cache
// sizes of the Zen 5 development machine (48 KiB L1d, 1 MiB L2), not swept: the AVX-512 kernel
// already reaches ~210 GFLOP/s at 512³ there, close to its 2-FMA-per-cycle peak.
const GENERIC_BLOCKS: Blocks = Blocks { kc: 256, mc: 64, nc: 2048 };
/// The largest KC of any variant (the im2col packing keeps one offset per depth row on the stack).
const MAX_KC: usize = 256;
#[cfg(target_arch = "x86_64")]
const AVX2_BLOCKS: Blocks = Blocks { kc: 256, mc: 96, nc: 2048 };
#[cfg(target_arch = "x86_64")]
const AVX512_BLOCKS: Blocks = Blocks { kc: 256, mc: 144, nc: 2048 };
const _: () = assert!(GENERIC_BLOCKS.kc <= MAX_KC);
#[cfg(target_arch = "x86_64")]
const _: () = assert!(AVX2_BLOCKS.kc <= MAX_KC && AVX512_BLOCKS.kc <= MAX_KC);

// The tile shapes matter to the autovectoriser: NR must be a power-of-two multiple of the
// vector width (an 8×48 AVX-512 tile, 24 accumulators like 12×32, measured 50× slower because
// the 48-wide rows were not kept in registers), and MR·NR/lanes accumulators plus the B row and
// a broadcast must fit the register file (16 ymm / 32 zmm).
#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::*;

    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn run_avx2(g: &Gemm, c: &mut [f32], ldc: usize, ws: &mut Workspace) {
        run_generic::<6, 16, true>(g, c, ldc, ws, AVX2_BLOCKS)
    }

    #[target_feature(enable = "avx512f,avx2,fma")]
    pub(super) unsafe fn run_avx512(g: &Gemm, c: &mut [f32], ldc: usize, ws: &mut Workspace) {
        run_generic::<12, 32, true>(g, c, ldc, ws, AVX512_BLOCKS)
    }
}

/// The wasm micro-kernel, written with simd128 intrinsics: 8 accumulators of 4 lanes (a 4×8
/// tile), two B vectors and the broadcast A values — within the 15 vector registers V8 gives
/// wasm on x86-64 (a 6×8 tile spills: 1.5× slower, a 5×8 one 1.6×; unrolling the depth loop
/// twice: 1.3× slower). In the relaxed-SIMD build (`+relaxed-simd`, chosen
/// at load by feature detection) the multiply-add is `f32x4.relaxed_madd`, one fused FMA
/// where the CPU has it; elsewhere a multiply then an add.
#[cfg(target_arch = "wasm32")]
mod wasm {
    use super::{Activation, Bias};
    use core::arch::wasm32::*;

    #[inline(always)]
    fn madd(a: v128, b: v128, c: v128) -> v128 {
        #[cfg(target_feature = "relaxed-simd")]
        {
            f32x4_relaxed_madd(a, b, c)
        }
        #[cfg(not(target_feature = "relaxed-simd"))]
        {
            f32x4_add(f32x4_mul(a, b), c)
        }
    }

    /// C's rows i0..i0+mr (mr ≤ 4), columns j0..j0+cols, over the packed B panels (8 columns
    /// each, the last zero-padded) = act(A·B + bias), A read straight from its rows (`kc`
    /// values each; a missing row reads as zeros) instead of a packed panel — the packing pass
    /// over A is a store and a reload of every activation — and the epilogue (bias,
    /// accumulation over depth blocks, SiLU) in SIMD, operation for operation the scalar
    /// `store` (same results). A ragged tile (fewer rows or columns) goes through the same
    /// epilogue on a padded copy, so an output's bits never depend on where its tile ends.
    ///
    /// One call per row group, its tiles side by side: the rows stay in L1 while B's panels
    /// stream past, C's rows are written whole in order, and the set-up (row slices, bounds,
    /// the loop's state) is paid once per group instead of per tile — in a function of its
    /// own, which V8 register-allocates apart from the blocking loops around it (the MLP's
    /// 4096×128×128 product: 3.35 → 3.0 ms).
    #[inline(never)]
    #[allow(clippy::too_many_arguments)]
    pub(super) fn rows_4x8(
        rows: [&[f32]; 4],
        kc: usize,
        bp: &[f32],
        c: &mut [f32],
        ldc: usize,
        (i0, mr): (usize, usize),
        (j0, cols): (usize, usize),
        (first, last): (bool, bool),
        bias: Bias,
        act: Activation,
    ) {
        let panels = cols.div_ceil(8);
        let bp = &bp[..panels * 8 * kc];
        let c = &mut c[i0 * ldc + j0..];
        assert!(mr <= 4 && c.len() >= (mr - 1) * ldc + cols);
        let col_bias = match bias {
            Bias::PerCol(bv) => Some(&bv[j0..j0 + cols]),
            _ => None,
        };
        let row_bias = match bias {
            Bias::PerRow(bv) => Some(&bv[i0..i0 + mr]),
            _ => None,
        };
        let silu_after = last && act == Activation::Silu;
        let k = SiluConsts::new();
        let (mut pad, mut pad_bias) = ([[0.0f32; 8]; 4], [0.0f32; 8]);
        for (jp, b) in bp.chunks_exact(8 * kc).enumerate() {
            let acc = accumulate_rows(rows, kc, b);
            let j = jp * 8;
            let nr = (cols - j).min(8);
            // A ragged tile: C's part of it, and the bias's, copied into padded ones.
            let ragged = mr < 4 || nr < 8;
            if ragged {
                (pad, pad_bias) = ([[0.0; 8]; 4], [0.0; 8]);
                for (i, p) in pad.iter_mut().enumerate().take(mr) {
                    p[..nr].copy_from_slice(&c[i * ldc + j..][..nr]);
                }
                if let Some(bv) = col_bias {
                    pad_bias[..nr].copy_from_slice(&bv[j..j + nr]);
                }
            }
            for (i, pair) in acc.chunks_exact(2).enumerate() {
                let (mut v0, mut v1) = (pair[0], pair[1]);
                // SAFETY: a full tile's row i holds 8 floats from j in c (asserted above: rows
                // 0..mr at strides of ldc, `cols` ≥ j + 8 wide), and so does a column bias from
                // j; a ragged tile's are the 8 floats of `pad[i]` and `pad_bias`.
                unsafe {
                    let out = if ragged { pad[i].as_mut_ptr() } else { c.as_mut_ptr().add(i * ldc + j) };
                    if first {
                        if let Some(bv) = row_bias {
                            let bv = f32x4_splat(bv.get(i).copied().unwrap_or(0.0));
                            (v0, v1) = (f32x4_add(v0, bv), f32x4_add(v1, bv));
                        } else if let Some(bv) = col_bias {
                            let bv = if ragged { pad_bias.as_ptr() } else { bv.as_ptr().add(j) };
                            v0 = f32x4_add(v0, v128_load(bv.cast()));
                            v1 = f32x4_add(v1, v128_load(bv.add(4).cast()));
                        }
                    } else {
                        v0 = f32x4_add(v128_load(out.cast()), v0);
                        v1 = f32x4_add(v128_load(out.add(4).cast()), v1);
                    }
                    if silu_after {
                        (v0, v1) = (silu(v0, &k), silu(v1, &k));
                    }
                    v128_store(out.cast(), v0);
                    v128_store(out.add(4).cast(), v1);
                }
            }
            if ragged {
                for (i, p) in pad.iter().enumerate().take(mr) {
                    c[i * ldc + j..][..nr].copy_from_slice(&p[..nr]);
                }
            }
        }
    }

    /// C = act(A·Bᵀ + bias) for a B of one or two columns stored as rows (`BLayout::Transposed`:
    /// a linear layer down to 2-D points' velocity) and a depth that is a multiple of 4, as dot
    /// products along the depth, 4 lanes at a time, two rows of A at once. `rows_4x8` would
    /// pad B's panel to 8 columns: 4× the multiply-adds, and the moons MLP's output layer took
    /// 0.25 ms of a 10.2 ms forward at 4096 points (0.09 ms here). Each output sums its 4 lanes
    /// pairwise, then adds the bias: another order than the panel kernels' with the same error
    /// bound, and every row summed alike wherever its block ends.
    #[inline(never)]
    pub(super) fn linear_narrow(g: &super::Gemm, c: &mut [f32], ldc: usize) {
        let (k, cols) = (g.depth, g.cols);
        let bias = [0, cols - 1].map(|j| if let Bias::PerCol(b) = g.bias { b[j] } else { 0.0 });
        // SAFETY (every read below): `Gemm::check` has asserted that A holds `rows` rows and B
        // `cols` rows of k floats at strides of lda and ldb, and p + 4 ≤ k. A missing second
        // column of B reads the first, a missing second row of A the first (neither stored).
        let b_rows = [0, cols - 1].map(|j| unsafe { g.b.as_ptr().add(j * g.ldb) });
        for i in (0..g.rows).step_by(2) {
            let a_rows = [i, (i + 1).min(g.rows - 1)].map(|r| unsafe { g.a.as_ptr().add(r * g.lda) });
            let mut acc = [[f32x4_splat(0.0); 2]; 2];
            for p in (0..k).step_by(4) {
                unsafe {
                    let w = b_rows.map(|r| v128_load(r.add(p).cast()));
                    for (acc, a) in acc.iter_mut().zip(a_rows) {
                        let x = v128_load(a.add(p).cast());
                        acc[0] = madd(x, w[0], acc[0]);
                        acc[1] = madd(x, w[1], acc[1]);
                    }
                }
            }
            for (r, acc) in acc.iter().enumerate().take(g.rows - i) {
                let row = &mut c[(i + r) * ldc..][..cols];
                for ((o, v), b) in row.iter_mut().zip(acc).zip(bias) {
                    let l: [f32; 4] = unsafe { std::mem::transmute(*v) };
                    *o = (l[0] + l[2]) + (l[1] + l[3]) + b;
                }
                if g.act == Activation::Silu {
                    silu_row(row);
                }
            }
        }
    }

    /// The 4×8 accumulators of A's 4 rows (`kc` values each) times a packed B panel.
    #[inline(always)]
    fn accumulate_rows(rows: [&[f32]; 4], kc: usize, b: &[f32]) -> [v128; 8] {
        let mut acc = [f32x4_splat(0.0); 8];
        let b = &b[..kc * 8];
        let rows = rows.map(|r| &r[..kc]);
        for (k, bk) in b.chunks_exact(8).enumerate() {
            // SAFETY: `bk` holds 8 floats; every row holds kc > k floats. A load-splat, not a
            // scalar load then a splat: V8 emits one broadcast load instead of a load and a shuffle.
            unsafe {
                let (b0, b1) = (v128_load(bk.as_ptr().cast()), v128_load(bk.as_ptr().add(4).cast()));
                for i in 0..4 {
                    let ai = v128_load32_splat(rows[i].as_ptr().add(k).cast());
                    acc[2 * i] = madd(ai, b0, acc[2 * i]);
                    acc[2 * i + 1] = madd(ai, b1, acc[2 * i + 1]);
                }
            }
        }
        acc
    }

    /// `silu_slice` on 4 lanes: x / (1 + exp_neg(x)). In the simd128 build the same
    /// operations in the same order (the same bits); in the relaxed-SIMD build each
    /// multiply-then-add is one `madd` (fused where the CPU has FMA): 16 operations instead of
    /// 24 and a shorter dependency chain, which is what bounds the MLP's epilogue. Every SiLU
    /// that ends a GEMM in wasm goes through here, ragged tiles included (`silu_row`), so an
    /// output's bits never depend on where a worker's share of the rows ends.
    #[inline(always)]
    fn silu(x: v128, k: &SiluConsts) -> v128 {
        // Pseudo-min/max (`b < a ? b : a`): one x86 instruction each, where wasm's NaN-
        // propagating min/max take several (the MLP ran 8% faster); the same results here, a
        // NaN x staying x as in the scalar clamp.
        let y = f32x4_pmin(f32x4_pmax(x, k.lo), k.hi);
        let t = madd(y, k.neg_log2e, k.round);
        let n = f32x4_sub(t, k.round);
        let r = madd(n, k.ln2_lo, madd(n, k.ln2_hi, y));
        let r2 = f32x4_mul(r, r);
        let a = madd(r, k.poly[1], k.poly[0]);
        let b = madd(r, k.poly[3], k.poly[2]);
        let p = madd(madd(k.poly[4], r2, b), r2, a);
        let e = madd(p, r2, f32x4_sub(k.one, r));
        // 2ⁿ: t's bits minus those of 1.5·2²³ (EXP_ROUND_BITS), shifted into the exponent; the
        // subtraction vanishes in the shift (its bits are all above bit 8).
        let scale = i32x4_shl(t, 23);
        f32x4_div(x, madd(e, scale, k.one))
    }

    /// [`silu`]'s constants, read once per call of its callers from a table whose address is
    /// hidden from LLVM (`black_box`). As constants, LLVM rematerialises each at every use
    /// (`v128.const`), which V8 builds from immediates in 3 instructions (two of them on the
    /// vector ports the SiLU needs): 36 instructions for a SiLU of 16. As loaded values they
    /// stay in registers or cost one load each: the MLP's SiLU 0.44 → 0.33 ms per 4096×128
    /// values in Chromium, 0.35 → 0.34 in Node. (A `black_box` on each splatted constant
    /// measured the same, in time and in bundle bytes; the table keeps them in one place.)
    pub(super) struct SiluConsts {
        lo: v128,
        hi: v128,
        neg_log2e: v128,
        round: v128,
        ln2_hi: v128,
        ln2_lo: v128,
        poly: [v128; 5],
        one: v128,
    }

    static SILU_CONSTS: [f32; 12] = {
        use super::{EXP_NEG_CLAMP, EXP_POLY, EXP_ROUND, LN2_HI, LN2_LO};
        let p = EXP_POLY;
        [
            EXP_NEG_CLAMP.0,
            EXP_NEG_CLAMP.1,
            -std::f32::consts::LOG2_E,
            EXP_ROUND,
            LN2_HI,
            LN2_LO,
            p[0],
            p[1],
            p[2],
            p[3],
            p[4],
            1.0,
        ]
    };

    impl SiluConsts {
        #[inline(always)]
        pub(super) fn new() -> Self {
            let table = std::hint::black_box(SILU_CONSTS.as_ptr());
            // SAFETY: the table holds 12 floats; each splat-load reads one of them.
            let s = |i: usize| unsafe { v128_load32_splat(table.add(i).cast()) };
            SiluConsts {
                lo: s(0),
                hi: s(1),
                neg_log2e: s(2),
                round: s(3),
                ln2_hi: s(4),
                ln2_lo: s(5),
                poly: [s(6), s(7), s(8), s(9), s(10)],
                one: s(11),
            }
        }
    }

    /// [`silu`] over a row of any length: whole vectors, then the last 1–3 values through a
    /// zero-padded vector (the same lanes' results as if the row were longer). One copy of it
    /// (its callers run it once per row, not per vector).
    #[inline(never)]
    pub(super) fn silu_row(row: &mut [f32]) {
        let k = SiluConsts::new();
        let mut chunks = row.chunks_exact_mut(4);
        for ch in &mut chunks {
            // SAFETY: `ch` holds 4 floats.
            unsafe { v128_store(ch.as_mut_ptr().cast(), silu(v128_load(ch.as_ptr().cast()), &k)) };
        }
        let tail = chunks.into_remainder();
        if !tail.is_empty() {
            let mut v = [0.0f32; 4];
            v[..tail.len()].copy_from_slice(tail);
            // SAFETY: `v` holds 4 floats.
            unsafe { v128_store(v.as_mut_ptr().cast(), silu(v128_load(v.as_ptr().cast()), &k)) };
            tail.copy_from_slice(&v[..tail.len()]);
        }
    }
}

#[inline(always)]
fn madd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA { a.mul_add(b, c) } else { a * b + c }
}

#[inline(always)]
fn run_generic<const MR: usize, const NR: usize, const FMA: bool>(
    g: &Gemm,
    c: &mut [f32],
    ldc: usize,
    ws: &mut Workspace,
    blk: Blocks,
) {
    // In wasm the 4×8 kernel reads A's rows in place (measured faster than packing them), row
    // group by row group across each packed block of B (`rows_in_place`): there is no packed A
    // block, so no MC blocking either.
    let in_place = cfg!(target_arch = "wasm32") && MR == 4 && NR == 8;
    let kc_max = blk.kc.min(g.depth);
    // MC is a multiple of MR and NC of NR so only the last panel of the matrix is ragged.
    let mc_max = (blk.mc.min(g.rows)).div_ceil(MR) * MR;
    let nc_max = (blk.nc.min(g.cols)).div_ceil(NR) * NR;
    if !in_place && ws.pack_a.len() < kc_max * mc_max {
        ws.pack_a.resize(kc_max * mc_max, 0.0);
    }
    if ws.pack_b.len() < kc_max * nc_max + B_SLACK {
        ws.pack_b.resize(kc_max * nc_max + B_SLACK, 0.0);
    }
    let (pack_a, pack_b) = (&mut ws.pack_a, &mut ws.pack_b);

    for jc in (0..g.cols).step_by(nc_max) {
        let nc = nc_max.min(g.cols - jc);
        let n_panels = nc.div_ceil(NR);
        for pc in (0..g.depth).step_by(kc_max) {
            let kc = kc_max.min(g.depth - pc);
            let (first, last) = (pc == 0, pc + kc == g.depth);
            match g.b_layout {
                BLayout::RowMajor => pack_b_rowmajor::<NR>(g.b, g.ldb, pc, kc, jc, nc, pack_b),
                BLayout::Transposed => pack_b_transposed::<NR>(g.b, g.ldb, pc, kc, jc, nc, pack_b),
                BLayout::Im2col(im) => pack_b_im2col::<NR>(g.b, &im, pc, kc, jc, nc, pack_b),
            }
            let bp = &pack_b[..n_panels * NR * kc];
            if in_place {
                for i0 in (0..g.rows).step_by(MR) {
                    let mr = MR.min(g.rows - i0);
                    rows_in_place::<MR, NR>(g, pc, kc, bp, c, ldc, (i0, mr), (jc, nc), (first, last));
                }
                continue;
            }
            for ic in (0..g.rows).step_by(mc_max) {
                let mc = mc_max.min(g.rows - ic);
                let m_panels = mc.div_ceil(MR);
                let ap = &mut pack_a[..m_panels * MR * kc];
                pack_a_rowmajor::<MR>(g.a, g.lda, ic, mc, pc, kc, ap);
                for (jp, bpanel) in bp.chunks_exact(NR * kc).enumerate() {
                    let j0 = jc + jp * NR;
                    let nr = NR.min(g.cols - j0);
                    for ip in 0..m_panels {
                        let i0 = ic + ip * MR;
                        let mr = MR.min(g.rows - i0);
                        let acc = micro::<MR, NR, FMA>(&ap[ip * MR * kc..(ip + 1) * MR * kc], bpanel);
                        store::<MR, NR>(&acc, c, ldc, i0, j0, mr, nr, first, last, g.bias, g.act);
                    }
                }
            }
        }
    }
}

/// C's rows i0..i0+mr, columns j0..j0+nc over the packed B panels, A's rows read in place
/// (wasm's 4×8 kernel, `wasm::rows_4x8`; natively `run_generic` never calls this).
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn rows_in_place<const MR: usize, const NR: usize>(
    g: &Gemm,
    p0: usize,
    kc: usize,
    bp: &[f32],
    c: &mut [f32],
    ldc: usize,
    (i0, mr): (usize, usize),
    (j0, nc): (usize, usize),
    first_last: (bool, bool),
) {
    #[cfg(target_arch = "wasm32")]
    if MR == 4 && NR == 8 {
        let rows = a_rows(g, i0, mr, p0, kc);
        return wasm::rows_4x8(rows, kc, bp, c, ldc, (i0, mr), (j0, nc), first_last, g.bias, g.act);
    }
    let _ = (g, p0, kc, bp, c, ldc, i0, mr, j0, nc, first_last);
    unreachable!("the in-place kernel is wasm's 4×8 only")
}

/// Depth p0..p0+kc of A's rows i0..i0+mr, and rows of zeros for the rest of the 4: what the
/// in-place kernels read (`store` keeps only the first mr rows of the tile).
#[cfg(target_arch = "wasm32")]
#[inline(always)]
fn a_rows<'a>(g: &Gemm<'a>, i0: usize, mr: usize, p0: usize, kc: usize) -> [&'a [f32]; 4] {
    static ZEROS: [f32; MAX_KC] = [0.0; MAX_KC];
    std::array::from_fn(|i| if i < mr { &g.a[(i0 + i) * g.lda + p0..][..kc] } else { &ZEROS[..kc] })
}

/// The register tile: Σ_p a[p][i]·b[p][j] over one packed A and B micro-panel.
#[inline(always)]
fn micro<const MR: usize, const NR: usize, const FMA: bool>(a: &[f32], b: &[f32]) -> [[f32; NR]; MR] {
    let mut acc = [[0.0f32; NR]; MR];
    for (ak, bk) in a.chunks_exact(MR).zip(b.chunks_exact(NR)) {
        let ak: &[f32; MR] = ak.try_into().unwrap();
        let bk: &[f32; NR] = bk.try_into().unwrap();
        for i in 0..MR {
            for j in 0..NR {
                acc[i][j] = madd::<FMA>(ak[i], bk[j], acc[i][j]);
            }
        }
    }
    acc
}

/// Writes (first depth block: bias + tile; later blocks: C + tile) and, after the last depth
/// block, the activation, clipped to the valid mr × nr corner of the tile.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn store<const MR: usize, const NR: usize>(
    acc: &[[f32; NR]; MR],
    c: &mut [f32],
    ldc: usize,
    i0: usize,
    j0: usize,
    mr: usize,
    nr: usize,
    first: bool,
    last: bool,
    bias: Bias,
    act: Activation,
) {
    for (ii, tile_row) in acc.iter().enumerate().take(mr) {
        let row = &mut c[(i0 + ii) * ldc + j0..][..nr];
        let tile_row = &tile_row[..nr];
        if first {
            match bias {
                Bias::None => row.copy_from_slice(tile_row),
                Bias::PerRow(b) => {
                    let bv = b[i0 + ii];
                    for (o, &t) in row.iter_mut().zip(tile_row) {
                        *o = t + bv;
                    }
                }
                Bias::PerCol(b) => {
                    for ((o, &t), &bv) in row.iter_mut().zip(tile_row).zip(&b[j0..j0 + nr]) {
                        *o = t + bv;
                    }
                }
            }
        } else {
            for (o, &t) in row.iter_mut().zip(tile_row) {
                *o += t;
            }
        }
        if last && act == Activation::Silu {
            silu_slice(row);
        }
    }
}

/// Rows i0..i0+mc, depth p0..p0+kc of a row-major A into panels of MR rows laid out [kc][MR].
#[inline(always)]
fn pack_a_rowmajor<const MR: usize>(
    a: &[f32],
    lda: usize,
    i0: usize,
    mc: usize,
    p0: usize,
    kc: usize,
    dst: &mut [f32],
) {
    for (ip, panel) in dst.chunks_exact_mut(MR * kc).enumerate() {
        let r0 = i0 + ip * MR;
        let mr = MR.min(i0 + mc - r0);
        for ii in 0..MR {
            if ii < mr {
                let src = &a[(r0 + ii) * lda + p0..][..kc];
                for (d, &v) in panel[ii..].iter_mut().step_by(MR).zip(src) {
                    *d = v;
                }
            } else {
                for d in panel[ii..].iter_mut().step_by(MR) {
                    *d = 0.0;
                }
            }
        }
    }
}

/// B[p0..p0+kc, j0..j0+nc] with b(p, j) = b[p·ldb + j] into panels of NR columns laid out [kc][NR].
#[inline(always)]
fn pack_b_rowmajor<const NR: usize>(
    b: &[f32],
    ldb: usize,
    p0: usize,
    kc: usize,
    j0: usize,
    nc: usize,
    dst: &mut [f32],
) {
    let dst = &mut dst[..nc.div_ceil(NR) * NR * kc];
    for (jp, panel) in dst.chunks_exact_mut(NR * kc).enumerate() {
        let c0 = j0 + jp * NR;
        let nr = NR.min(j0 + nc - c0);
        for (p, drow) in panel.chunks_exact_mut(NR).enumerate() {
            let src = &b[(p0 + p) * ldb + c0..][..nr];
            copy_padded::<NR>(src, drow);
        }
    }
}

/// dst = src followed by zeros. The full-width case is a fixed-size copy, which compiles to a
/// few vector moves instead of a `memcpy` call per packed row.
#[inline(always)]
fn copy_padded<const NR: usize>(src: &[f32], dst: &mut [f32]) {
    let dst: &mut [f32; NR] = dst.try_into().unwrap();
    if let Ok(src) = <&[f32; NR]>::try_from(src) {
        *dst = *src;
    } else {
        dst[..src.len()].copy_from_slice(src);
        dst[src.len()..].fill(0.0);
    }
}

/// Same, for b(p, j) = b[j·ldb + p] (a transposed weight): its columns are rows of `b`, so this
/// is the row-major A packing with the roles of rows and depth swapped.
#[inline(always)]
fn pack_b_transposed<const NR: usize>(
    b: &[f32],
    ldb: usize,
    p0: usize,
    kc: usize,
    j0: usize,
    nc: usize,
    dst: &mut [f32],
) {
    pack_a_rowmajor::<NR>(b, ldb, j0, nc, p0, kc, &mut dst[..nc.div_ceil(NR) * NR * kc])
}

/// Columns j0..j0+nc, depth p0..p0+kc of [`BLayout::Im2col`]'s implicit matrix into panels of NR
/// columns laid out [kc][NR], straight from the padded image: no im2col matrix is written and
/// read back (that pass was ~18% of the U-Net's convolution time in wasm).
///
/// A panel's NR output pixels fall into a few runs, one per output row they touch, and a run's
/// values for depth p are consecutive floats of one padded input row. Each run is moved as a
/// whole NR-wide row (a fixed-size copy, no per-element index or bounds arithmetic, no `memcpy`
/// call): its floats past the run's length are overwritten by the next run, by the next depth
/// row, or land in the slack after the panels, and a ragged last panel's padding columns are
/// zeroed after its runs.
#[inline(always)]
fn pack_b_im2col<const NR: usize>(
    img: &[f32],
    im: &PaddedImage,
    p0: usize,
    kc: usize,
    j0: usize,
    nc: usize,
    dst: &mut [f32],
) {
    let (ow, plane) = (im.ow(), im.hp * im.wp);
    let n_panels = nc.div_ceil(NR);
    // Where depth row p's window starts in the padded image (once, not per panel).
    let mut offs = [0usize; MAX_KC];
    assert!(kc <= MAX_KC && NR <= B_SLACK && dst.len() >= n_panels * NR * kc + B_SLACK);
    for (i, o) in offs[..kc].iter_mut().enumerate() {
        let p = p0 + i;
        let (ci, ky, kx) = (p / (im.kh * im.kw), p / im.kw % im.kh, p % im.kw);
        *o = ci * plane + ky * im.wp + kx;
    }
    let offs = &offs[..kc];
    // Every read below is of NR floats from offs[p] + corner(c) for a pixel c < j0 + nc, and
    // both grow with p and c: the last one ends inside the image's slack.
    let last = j0 + nc - 1;
    assert!(offs[kc - 1] + (last / ow) * im.wp + last % ow + NR <= img.len());
    for jp in 0..n_panels {
        let c0 = j0 + jp * NR;
        let nr = NR.min(j0 + nc - c0);
        // (column in the panel, offset of the pixel's window corner in a padded plane)
        let mut runs = [(0usize, 0usize); NR];
        let mut n_runs = 0;
        let mut c = c0;
        while c < c0 + nr {
            let (oy, ox) = (c / ow, c % ow);
            runs[n_runs] = (c - c0, oy * im.wp + ox);
            n_runs += 1;
            c += (ow - ox).min(c0 + nr - c);
        }
        let panel = &mut dst[jp * kc * NR..(jp + 1) * kc * NR + B_SLACK];
        // SAFETY (both loops): reads are in bounds by the assert above; a write of NR floats at
        // column col < NR of row p < kc ends before (p + 2)·NR ≤ kc·NR + NR ≤ panel.len().
        unsafe {
            let (src, out) = (img.as_ptr(), panel.as_mut_ptr());
            if n_runs == 1 && nr == NR {
                // The common case: the whole panel inside one output row.
                let corner = src.add(runs[0].1);
                for (p, &o) in offs.iter().enumerate() {
                    let v = std::ptr::read_unaligned(corner.add(o).cast::<[f32; NR]>());
                    std::ptr::write_unaligned(out.add(p * NR).cast::<[f32; NR]>(), v);
                }
                continue;
            }
            for (p, &o) in offs.iter().enumerate() {
                for &(col, corner) in &runs[..n_runs] {
                    let v = std::ptr::read_unaligned(src.add(o + corner).cast::<[f32; NR]>());
                    std::ptr::write_unaligned(out.add(p * NR + col).cast::<[f32; NR]>(), v);
                }
                for j in nr..NR {
                    *out.add(p * NR + j) = 0.0;
                }
            }
        }
    }
}

/// In-place SiLU with a polynomial exp the compiler can vectorise (std's `exp` is a scalar libm
/// call, which would cost as much as the product itself for a 256-wide layer). In wasm through
/// the SIMD SiLU of the GEMM's full tiles (`wasm::silu`): a row's results do not depend on
/// whether its tile was full, and in the relaxed-SIMD build its multiply-adds are fused, which
/// the compiler may not do to this loop (GroupNorm + SiLU on the U-Net: 354–364 → 251–274 ms).
#[inline(always)]
pub(crate) fn silu_slice(x: &mut [f32]) {
    #[cfg(target_arch = "wasm32")]
    wasm::silu_row(x);
    #[cfg(not(target_arch = "wasm32"))]
    for v in x {
        *v /= 1.0 + exp_neg(*v);
    }
}

/// x is clamped to this range in `exp_neg(x)`: e^(−x) is then a normal float.
const EXP_NEG_CLAMP: (f32, f32) = (-88.0, 87.0);
/// 1.5 · 2²³ + 127: adding it rounds to an integer n (the ulp there is 1) and leaves n + 127,
/// the biased exponent of 2ⁿ, in the low mantissa bits.
const EXP_ROUND: f32 = 12_583_039.0;
/// The bits of 1.5 · 2²³, which subtracted from the sum's bits leave n + 127.
const EXP_ROUND_BITS: u32 = 0x4B40_0000;
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// The coefficients of r², r³ … r⁶ in e^(−r) ≈ 1 − r + Σ, for |r| ≤ ln2/2: the minimax
/// (relative error 3.1e-9) quartic P in e^u ≈ 1 + u + u²·P(u), found by Remez exchange, with
/// the odd powers' signs flipped for u = −r.
const EXP_POLY: [f32; 5] = [0.499_999_94, -0.166_665_21, 0.041_668_39, -0.008_368_731, 0.001_381_457_1];

/// e^(−x) to within 1 ulp for x in [-88, 87] (clamped outside; tested): Cody–Waite reduction
/// −x = n·ln2 − r with r = x + n·ln2, |r| ≤ ln2/2, so e^(−x) = 2ⁿ·e^(−r) (the minus is folded
/// into the constants, so the SIMD SiLU needs no negation), and a degree-6 minimax polynomial. Integer n is obtained with
/// the 1.5·2²³ rounding trick and 2ⁿ built from its bits, so there is no float→int conversion
/// or libm call.
///
/// The polynomial is evaluated in pairs (r², then two linear terms folded in with it) rather
/// than by Horner's rule: a dependency chain of 4 roundings instead of 6. The wasm SiLU
/// epilogue is bound by that chain's latency and by its operation count, not by throughput
/// of any one unit (degree 6 instead of Cephes' 7, and the pairs: the SiLU of 4096×128 values
/// 0.47 → 0.35 ms in Node's V8, before its constants were read from a table).
#[inline(always)]
pub(crate) fn exp_neg(x: f32) -> f32 {
    let y = x.clamp(EXP_NEG_CLAMP.0, EXP_NEG_CLAMP.1);
    let t = y * -std::f32::consts::LOG2_E + EXP_ROUND;
    let n = t - EXP_ROUND;
    let r = n * LN2_LO + (n * LN2_HI + y);
    let r2 = r * r;
    let a = r * EXP_POLY[1] + EXP_POLY[0];
    let b = r * EXP_POLY[3] + EXP_POLY[2];
    let p = (EXP_POLY[4] * r2 + b) * r2 + a;
    let e = p * r2 + (1.0 - r);
    let bits = t.to_bits().wrapping_sub(EXP_ROUND_BITS) << 23;
    e * f32::from_bits(bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Distance in units in the last place between `got` and the f64 `want` rounded to f32.
    fn ulps(got: f32, want: f64) -> i64 {
        (got.to_bits() as i64 - (want as f32).to_bits() as i64).abs()
    }

    /// exp_neg against f64 `exp` over its whole range (2²⁰ points plus both clamp ends), and
    /// SiLU built on it against the f64 SiLU: the accuracy its docs state.
    #[test]
    fn exp_neg_and_silu_accuracy() {
        let (lo, hi) = EXP_NEG_CLAMP;
        let n = 1 << 20;
        let (mut worst_exp, mut worst_silu) = (0, 0);
        for i in 0..=n {
            let x = lo + (hi - lo) * (i as f32 / n as f32);
            worst_exp = worst_exp.max(ulps(exp_neg(x), (-(x as f64)).exp()));
            // SiLU where its value is a normal float (below about -87 it underflows).
            if x > -80.0 {
                let want = x as f64 / (1.0 + (-(x as f64)).exp());
                let mut got = [x];
                silu_slice(&mut got);
                worst_silu = worst_silu.max(ulps(got[0], want));
            }
        }
        eprintln!("exp_neg: worst {worst_exp} ulp; silu: worst {worst_silu} ulp");
        assert!(worst_exp <= 1, "exp_neg is {worst_exp} ulp off");
        assert!(worst_silu <= 3, "silu is {worst_silu} ulp off");
        assert_eq!(exp_neg(-1000.0), exp_neg(lo));
        assert_eq!(exp_neg(1000.0), exp_neg(hi));
        assert!(exp_neg(f32::NAN).is_nan());
    }

    /// `required_features` is exactly what each kernel is compiled with: the
    /// `#[target_feature(enable = "...")]` line above each `run_*` function in this file.
    #[test]
    fn required_features_match_the_kernels_target_feature_attributes() {
        let src = include_str!("blocked.rs");
        for (isa, func) in [(Isa::Avx2, "fn run_avx2("), (Isa::Avx512, "fn run_avx512(")] {
            let at = src.find(func).unwrap_or_else(|| panic!("{func} not found"));
            let attr = src[..at].rsplit("#[target_feature(enable = \"").next().unwrap();
            let list = &attr[..attr.find('"').unwrap()];
            let mut compiled: Vec<&str> = list.split(',').map(str::trim).collect();
            let mut required = isa.required_features().to_vec();
            compiled.sort();
            required.sort();
            assert_eq!(compiled, required, "{isa:?}: kernel compiled with {list:?}");
        }
        // Every target_feature attribute in the file is one of those two.
        let attrs = src.lines().filter(|l| l.trim_start().starts_with("#[target_feature(")).count();
        assert_eq!(attrs, 2);
    }

    /// Detection never picks a variant whose features are not all reported by the CPU, and
    /// every name it asks about is one `feature_detected` knows.
    #[test]
    fn detect_only_returns_a_variant_whose_features_are_all_present() {
        let best = Isa::detect();
        assert!(best.supported(), "{best:?}");
        #[cfg(target_arch = "x86_64")]
        for f in best.required_features() {
            let known = ["avx512f", "avx2", "fma"];
            assert!(known.contains(f), "{f}");
        }
        #[cfg(target_arch = "x86_64")]
        {
            let avx512 = std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma");
            assert_eq!(Isa::Avx512.supported(), avx512);
            if !avx512 {
                assert_ne!(best, Isa::Avx512);
            }
        }
        for isa in Isa::available() {
            assert!(isa.supported(), "{isa:?}");
            assert_eq!(isa.clamp_to_cpu(), isa);
        }
        assert_eq!(Isa::available()[0], Isa::Generic);
        assert_eq!(*Isa::available().last().unwrap(), best);
        assert!(!feature_detected("no-such-feature"));
    }
}
