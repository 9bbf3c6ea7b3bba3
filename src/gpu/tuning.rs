//! Which kernel variant runs where: the engine times its candidates on the adapter it meets and
//! keeps the fastest per shape class, instead of assuming what wins on the adapters we test on.
//!
//! The linear layer has three variants (`shaders/matmul.wgsl`): register blocking straight
//! from global memory, which wins on software adapters (lavapipe, SwiftShader emulate workgroup
//! memory and barriers), and workgroup-memory tiling in 64×64 and 128×128 patches, what real
//! GPUs are built for (the larger patch needs enough rows to fill a large GPU). The convolution
//! has three: direct register blocking (`shaders/conv2d.wgsl`) and implicit GEMMs through
//! workgroup memory in 128- and 256-pixel tiles (`shaders/conv_gemm.wgsl`, native only). A
//! shape class is the product's (n, k, m) rounded up to powers of two (for a convolution:
//! output pixels, c_in·kh·kw, c_out): layers of one model at one batch size share a class, and
//! a class's winner is measured on its first member.
//!
//! A [`Tuning`] belongs to one adapter. Its stored form is the small text of
//! [`Tuning::to_text`], keyed by [`adapter_key`] so that a new driver or a new version of this
//! crate tunes again. Natively `tuning_cache.rs` keeps it on disk (the CLI tunes the classes a
//! solve ran, ≤ 300 ms, and later runs start from the file); the browser build runs no tuner
//! today: its timing loop and `localStorage` were 3.7 KB of gzip, over the bundle budget.

use crate::shapes::Conv2dShape;

/// The kernel variants of one family, for the tuner and the stored text.
pub trait Variant: Copy + PartialEq + std::fmt::Debug + 'static {
    /// The family's word in the stored text.
    const FAMILY: &'static str;
    fn all() -> &'static [Self];
    fn name(self) -> &'static str;
    fn from_name(name: &str) -> Option<Self> {
        Self::all().iter().copied().find(|v| v.name() == name)
    }
}

/// The linear layer's kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum LinearVariant {
    /// 4×4 outputs per invocation read straight from global memory (`linear_k4`/`linear_any`).
    Registers,
    /// 64×64 outputs per 16×16 workgroup through workgroup memory (`linear_tiled`).
    Tiled,
    /// 128×128 outputs per 16×16 workgroup, 8×8 per invocation (`linear_tiled128`).
    Tiled128,
}

impl Variant for LinearVariant {
    const FAMILY: &'static str = "linear";

    fn all() -> &'static [Self] {
        &Self::ALL
    }

    fn name(self) -> &'static str {
        match self {
            LinearVariant::Registers => "registers4x4",
            LinearVariant::Tiled => "tiled64",
            LinearVariant::Tiled128 => "tiled128",
        }
    }
}

impl LinearVariant {
    pub const ALL: [LinearVariant; 3] = [LinearVariant::Registers, LinearVariant::Tiled, LinearVariant::Tiled128];

    pub fn name(self) -> &'static str {
        Variant::name(self)
    }

    pub fn from_name(name: &str) -> Option<LinearVariant> {
        Variant::from_name(name)
    }

    /// The untuned choice: registers on software adapters (measured there), tiles elsewhere.
    pub fn default_for(software: bool) -> LinearVariant {
        if software { LinearVariant::Registers } else { LinearVariant::Tiled }
    }
}

/// The convolution's kernels (`shaders/conv2d.wgsl`, `shaders/conv_gemm.wgsl`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ConvVariant {
    /// 4 channels × 4 pixels per invocation straight from global memory (`conv3x3_s1`/`conv2d`).
    Direct,
    /// Implicit GEMM through workgroup memory, 128 pixels × 32 channels per workgroup (`conv_gemm`).
    Gemm,
    /// The same with 256 pixels per workgroup and 8 × 4 outputs per invocation (`conv_gemm_wide`).
    GemmWide,
}

impl Variant for ConvVariant {
    const FAMILY: &'static str = "conv";

    fn all() -> &'static [Self] {
        &Self::ALL
    }

    fn name(self) -> &'static str {
        match self {
            ConvVariant::Direct => "direct",
            ConvVariant::Gemm => "implicit_gemm",
            ConvVariant::GemmWide => "implicit_gemm_wide",
        }
    }
}

impl ConvVariant {
    pub const ALL: [ConvVariant; 3] = [ConvVariant::Direct, ConvVariant::Gemm, ConvVariant::GemmWide];

    pub fn name(self) -> &'static str {
        Variant::name(self)
    }

    /// The untuned choice, on every adapter: direct. On software adapters workgroup memory is
    /// emulated; on the NVIDIA H200 the implicit GEMM lost at the mnist U-Net's 24- and
    /// 48-channel layers too (BENCHMARKS.md), so only a measurement makes it win.
    pub fn default_for(_software: bool) -> ConvVariant {
        ConvVariant::Direct
    }
}

/// (n, k, m) of a linear layer rounded up to powers of two (their base-2 logarithms).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct LinearClass {
    pub n_log2: u8,
    pub k_log2: u8,
    pub m_log2: u8,
}

impl LinearClass {
    pub fn of(n: usize, k: usize, m: usize) -> LinearClass {
        let lg = |v: usize| v.max(1).next_power_of_two().trailing_zeros() as u8;
        LinearClass { n_log2: lg(n), k_log2: lg(k), m_log2: lg(m) }
    }

    /// A convolution's class: its implicit matrix product's (output pixels, c_in·kh·kw, c_out).
    pub fn of_conv(s: &Conv2dShape) -> LinearClass {
        LinearClass::of(s.batch * s.out_h() * s.out_w(), s.c_in * s.kh * s.kw, s.c_out)
    }
}

/// One class's measurement: the winner and each candidate's time (µs per call; whole numbers,
/// so that reading a stored tuning needs no float parser in the wasm).
#[derive(Debug, Clone, PartialEq)]
pub struct Choice<V> {
    pub variant: V,
    pub us: Vec<(V, u32)>,
}

pub type LinearChoice = Choice<LinearVariant>;
pub type ConvChoice = Choice<ConvVariant>;

/// The chosen variants of one adapter.
#[derive(Debug, Clone, PartialEq)]
pub struct Tuning {
    /// Whether the adapter is a software one (picks the untuned default).
    pub software: bool,
    linear: Vec<(LinearClass, LinearChoice)>,
    conv: Vec<(LinearClass, ConvChoice)>,
    /// One shape of each class that ran untuned, for [`GpuBackend::tune_linear`] and
    /// [`GpuBackend::tune_conv`] to measure later (the first solve finds a model's shapes,
    /// whatever its architecture).
    ///
    /// [`GpuBackend::tune_linear`]: super::GpuBackend::tune_linear
    /// [`GpuBackend::tune_conv`]: super::GpuBackend::tune_conv
    untuned: Vec<(LinearClass, (usize, usize, usize))>,
    untuned_conv: Vec<(LinearClass, Conv2dShape)>,
    /// Every linear layer runs this variant, whatever was measured (tests, benchmarks).
    pub forced_linear: Option<LinearVariant>,
    /// Every convolution runs this variant (tests, benchmarks).
    pub forced_conv: Option<ConvVariant>,
}

/// At most this many untuned shapes are remembered (a model has a handful of classes).
const MAX_UNTUNED: usize = 64;

/// What the text form starts with; a different first line is not ours (or an older format).
const TEXT_HEADER: &str = "pushforward-tuning 1";

impl Tuning {
    pub fn new(software: bool) -> Tuning {
        Tuning {
            software,
            linear: Vec::new(),
            conv: Vec::new(),
            untuned: Vec::new(),
            untuned_conv: Vec::new(),
            forced_linear: None,
            forced_conv: None,
        }
    }

    /// Notes a linear layer that is about to run: its class is remembered if it is not tuned.
    pub fn note(&mut self, n: usize, k: usize, m: usize) {
        let class = LinearClass::of(n, k, m);
        if self.untuned.len() < MAX_UNTUNED && !self.untuned.iter().any(|&(c, _)| c == class) && !self.is_tuned(class) {
            self.untuned.push((class, (n, k, m)));
        }
    }

    /// One shape of each class that ran and is not tuned yet.
    pub fn untuned(&self) -> Vec<(usize, usize, usize)> {
        self.untuned.iter().filter(|&&(c, _)| !self.is_tuned(c)).map(|&(_, shape)| shape).collect()
    }

    fn choice(&self, class: LinearClass) -> Option<&LinearChoice> {
        find(&self.linear, class)
    }

    /// The variant a linear layer of this shape runs.
    pub fn linear(&self, n: usize, k: usize, m: usize) -> LinearVariant {
        self.forced_linear
            .or_else(|| self.choice(LinearClass::of(n, k, m)).map(|c| c.variant))
            .unwrap_or_else(|| LinearVariant::default_for(self.software))
    }

    /// Notes a convolution that is about to run, like [`Tuning::note`].
    pub fn note_conv(&mut self, s: &Conv2dShape) {
        let class = LinearClass::of_conv(s);
        let known = self.untuned_conv.iter().any(|&(c, _)| c == class) || find(&self.conv, class).is_some();
        if self.untuned_conv.len() < MAX_UNTUNED && !known {
            self.untuned_conv.push((class, *s));
        }
    }

    /// One convolution of each class that ran and is not tuned yet.
    pub fn untuned_conv(&self) -> Vec<Conv2dShape> {
        self.untuned_conv.iter().filter(|&&(c, _)| find(&self.conv, c).is_none()).map(|&(_, s)| s).collect()
    }

    /// The variant a convolution of this geometry runs.
    pub fn conv(&self, s: &Conv2dShape) -> ConvVariant {
        self.forced_conv
            .or_else(|| find(&self.conv, LinearClass::of_conv(s)).map(|c| c.variant))
            .unwrap_or_else(|| ConvVariant::default_for(self.software))
    }

    pub fn is_conv_tuned(&self, class: LinearClass) -> bool {
        find(&self.conv, class).is_some()
    }

    /// Keeps `choice` for the convolutions of `class` (replacing an earlier one).
    pub fn record_conv(&mut self, class: LinearClass, choice: ConvChoice) {
        self.conv.retain(|(c, _)| *c != class);
        self.conv.push((class, choice));
    }

    /// Every measured convolution class, in the order measured.
    pub fn conv_choices(&self) -> impl Iterator<Item = (&LinearClass, &ConvChoice)> {
        self.conv.iter().map(|(c, choice)| (c, choice))
    }

    pub fn is_tuned(&self, class: LinearClass) -> bool {
        self.choice(class).is_some()
    }

    /// Keeps `choice` for `class` (replacing an earlier one).
    pub fn record(&mut self, class: LinearClass, choice: LinearChoice) {
        self.linear.retain(|(c, _)| *c != class);
        self.linear.push((class, choice));
    }

    /// Every measured class, in the order measured.
    pub fn choices(&self) -> impl Iterator<Item = (&LinearClass, &LinearChoice)> {
        self.linear.iter().map(|(c, choice)| (c, choice))
    }

    /// One line per class: `linear n_log2 k_log2 m_log2 winner name=µs …` (`conv …` likewise).
    pub fn to_text(&self) -> String {
        let mut s = format!("{TEXT_HEADER}\n");
        line_per_class(&mut s, &self.linear);
        line_per_class(&mut s, &self.conv);
        s
    }

    /// Reads `to_text`'s form; None for anything else (a stale or foreign entry is re-tuned,
    /// never trusted half-way). Read as whitespace-separated words, each class being exactly
    /// its family's word, three logarithms, the winner and one `name=µs` per variant (the
    /// browser build carries this parser: it stays small).
    pub fn from_text(text: &str, software: bool) -> Option<Tuning> {
        let mut words = text.split_ascii_whitespace();
        if TEXT_HEADER.split_ascii_whitespace().any(|h| words.next() != Some(h)) {
            return None;
        }
        let mut t = Tuning::new(software);
        while let Some(word) = words.next() {
            if word == LinearVariant::FAMILY {
                let (class, choice) = read_class(&mut words)?;
                t.record(class, choice);
            } else if word == ConvVariant::FAMILY {
                let (class, choice) = read_class(&mut words)?;
                t.record_conv(class, choice);
            } else {
                return None;
            }
        }
        Some(t)
    }
}

fn find<V>(classes: &[(LinearClass, Choice<V>)], class: LinearClass) -> Option<&Choice<V>> {
    classes.iter().find(|(c, _)| *c == class).map(|(_, choice)| choice)
}

fn line_per_class<V: Variant>(s: &mut String, classes: &[(LinearClass, Choice<V>)]) {
    for (c, choice) in classes {
        *s += &format!("{} {} {} {} {}", V::FAMILY, c.n_log2, c.k_log2, c.m_log2, choice.variant.name());
        for (v, us) in &choice.us {
            *s += &format!(" {}={us}", v.name());
        }
        s.push('\n');
    }
}

/// One class after its family's word: three logarithms, the winner, `name=µs` per variant.
fn read_class<'a, V: Variant>(words: &mut impl Iterator<Item = &'a str>) -> Option<(LinearClass, Choice<V>)> {
    let mut lg = || number(words.next()?).filter(|&v| v < 40).map(|v| v as u8);
    let class = LinearClass { n_log2: lg()?, k_log2: lg()?, m_log2: lg()? };
    let variant = V::from_name(words.next()?)?;
    let mut us = Vec::with_capacity(V::all().len());
    for _ in V::all() {
        let word = words.next()?;
        let eq = word.bytes().position(|b| b == b'=')?;
        us.push((V::from_name(&word[..eq])?, number(&word[eq + 1..])?));
    }
    Some((class, Choice { variant, us }))
}

/// A decimal number of 1–9 digits (no sign, no float parser in the wasm).
fn number(s: &str) -> Option<u32> {
    if s.is_empty() || s.len() > 9 {
        return None;
    }
    s.bytes().try_fold(0u32, |v, b| b.is_ascii_digit().then(|| v * 10 + (b - b'0') as u32))
}

/// The key a tuning is stored under: the adapter, its driver, and this crate's version (whose
/// kernels were timed).
pub fn adapter_key(info: &wgpu::AdapterInfo) -> String {
    format!(
        "{}|{}|{}|{}|{}|{}|{}|{}",
        info.name,
        info.vendor,
        info.device,
        info.device_type as u32,
        info.driver,
        info.driver_info,
        info.backend as u32,
        env!("CARGO_PKG_VERSION")
    )
}

/// Turns a candidate's wall time into the time the tuner compares. The engine's is the wall
/// time itself; tests substitute scripted times to check that the tuner keeps the fastest.
/// `variant` is the candidate's name (`Variant::name`).
pub trait LapTimer {
    fn lap(&mut self, class: LinearClass, variant: &str, wall_ms: f64) -> f64;
}

/// Wall-clock timing (`host::now_ms` around the candidate's calls and a wait for the device).
pub struct WallTimer;

impl LapTimer for WallTimer {
    fn lap(&mut self, _: LinearClass, _: &str, wall_ms: f64) -> f64 {
        wall_ms
    }
}

/// The fastest of the measured candidates (the first of equals).
pub fn fastest<V: Copy>(us: &[(V, u32)]) -> Option<V> {
    us.iter().min_by_key(|(_, t)| *t).map(|(v, _)| *v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_round_up_to_powers_of_two() {
        assert_eq!(LinearClass::of(4096, 34, 128), LinearClass { n_log2: 12, k_log2: 6, m_log2: 7 });
        assert_eq!(LinearClass::of(4097, 128, 128), LinearClass { n_log2: 13, k_log2: 7, m_log2: 7 });
        assert_eq!(LinearClass::of(1, 1, 0), LinearClass { n_log2: 0, k_log2: 0, m_log2: 0 });
    }

    #[test]
    fn the_text_form_round_trips_and_refuses_anything_else() {
        let mut t = Tuning::new(true);
        assert_eq!(t.linear(4096, 128, 128), LinearVariant::Registers);
        assert_eq!(Tuning::new(false).linear(4096, 128, 128), LinearVariant::Tiled);
        let class = LinearClass::of(4096, 128, 128);
        let us = vec![(LinearVariant::Registers, 2500), (LinearVariant::Tiled, 1250), (LinearVariant::Tiled128, 1500)];
        t.record(class, LinearChoice { variant: LinearVariant::Tiled, us });
        assert_eq!(t.linear(4000, 100, 127), LinearVariant::Tiled);
        assert_eq!(t.linear(8192, 128, 128), LinearVariant::Registers, "another class: the default");
        use ConvVariant::*;
        let conv = ConvChoice { variant: Gemm, us: vec![(Direct, 900), (Gemm, 700), (GemmWide, 800)] };
        t.record_conv(LinearClass::of(50176, 216, 24), conv);
        let text = t.to_text();
        assert!(
            text.ends_with("conv 16 8 5 implicit_gemm direct=900 implicit_gemm=700 implicit_gemm_wide=800\n"),
            "{text}"
        );
        assert_eq!(Tuning::from_text(&text, true), Some(t.clone()), "{text}");
        let bad = [
            "",
            "pushforward-tuning 2\n",
            &text.replace("tiled64 ", "tiled65 "),
            &text.replace("=1250", "=1.25"),
            &text.replace("=1250", "=-1"),
            &text.replace("=1250", "="),
            &text.replace("=1250", "=12345678901"),
            &text.replace(" 12 ", " 99 "),
            &text.replace(" tiled64=1250", ""),
            &text.replace("conv 16", "convolution 16"),
            &text.replace(" direct=900", ""),
            &text.replace("direct=900", "tiled64=900"),
        ];
        for bad in bad {
            assert_eq!(Tuning::from_text(bad, true), None, "{bad:?}");
        }
        t.forced_linear = Some(LinearVariant::Registers);
        assert_eq!(t.linear(4000, 100, 127), LinearVariant::Registers);
    }

    #[test]
    fn untuned_shapes_are_remembered_once_per_class_until_tuned() {
        let mut t = Tuning::new(true);
        for (n, k, m) in [(4096, 34, 128), (4000, 40, 100), (4096, 128, 128), (4096, 34, 128)] {
            t.note(n, k, m);
        }
        assert_eq!(t.untuned(), vec![(4096, 34, 128), (4096, 128, 128)]);
        let choice = LinearChoice { variant: LinearVariant::Tiled, us: vec![] };
        t.record(LinearClass::of(4096, 128, 128), choice);
        assert_eq!(t.untuned(), vec![(4096, 34, 128)]);
        t.note(4096, 128, 128);
        assert_eq!(t.untuned(), vec![(4096, 34, 128)], "a tuned class is not noted again");
        for i in 0..100 {
            t.note(1 << (i % 20), 1 + i, 3);
        }
        assert!(t.untuned().len() <= MAX_UNTUNED);
    }

    #[test]
    fn fastest_keeps_the_first_of_equals() {
        use LinearVariant::*;
        assert_eq!(fastest(&[(Registers, 3), (Tiled, 2)]), Some(Tiled));
        assert_eq!(fastest(&[(Registers, 1), (Tiled, 1)]), Some(Registers));
        assert_eq!(fastest::<LinearVariant>(&[]), None);
    }
}
