//! Build script: copies `shaders/*.wgsl` into `OUT_DIR` with comments, indentation, repeated
//! spaces and the spaces around punctuation removed (the WGSL sources are ~60% comments and indentation, and they ship inside the
//! browser bundle). Every line stays where it was — a stripped line becomes empty — so the line
//! numbers in naga's error messages still point into `shaders/`. WGSL has no string literals,
//! so `//` always starts a comment; block comments (`/* */`, which nest) are not used there and
//! are rejected here so that the stripping stays this simple.

use std::{env, fs, path::Path};

fn main() {
    let out = env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    println!("cargo:rerun-if-changed=shaders");
    for entry in fs::read_dir("shaders").expect("shaders/ exists") {
        let path = entry.expect("readable shaders/ entry").path();
        if path.extension().is_none_or(|e| e != "wgsl") {
            continue;
        }
        println!("cargo:rerun-if-changed={}", path.display());
        let src = fs::read_to_string(&path).expect("shader is UTF-8");
        assert!(!src.contains("/*"), "{}: block comments are not supported by build.rs's stripping", path.display());
        let name = path.file_name().expect("file name");
        fs::write(Path::new(&out).join(name), strip(&src)).expect("write OUT_DIR shader");
    }
}

/// Drops `//` comments, leading/trailing whitespace, runs of spaces and the spaces next to
/// punctuation (`a = b + c;` → `a=b+c;`); keeps every newline. A space between two operator
/// characters stays (`a - -b` must not become `a--b`, nor `x = -1` a different token).
fn strip(src: &str) -> String {
    let mut out = String::with_capacity(src.len());
    for line in src.lines() {
        let code = line.find("//").map_or(line, |i| &line[..i]);
        let chars: Vec<char> = code.trim().chars().collect();
        for (i, &c) in chars.iter().enumerate() {
            if c.is_whitespace() {
                let next = chars[i + 1..].iter().copied().find(|c| !c.is_whitespace());
                let prev = out.chars().last();
                let (Some(prev), Some(next)) = (prev, next) else { continue };
                let keep =
                    !prev.is_whitespace() && ((!punct(prev) && !punct(next)) || (operator(prev) && operator(next)));
                if keep {
                    out.push(' ');
                }
            } else {
                out.push(c);
            }
        }
        out.push('\n');
    }
    out
}

/// Characters a WGSL token cannot continue across: a space beside one is not needed.
fn punct(c: char) -> bool {
    ",;:(){}[].@".contains(c) || operator(c)
}

/// Characters that form multi-character operators when adjacent (`--`, `<=`, `&&`, `->`, …).
fn operator(c: char) -> bool {
    "+-*/%<>=!&|^~".contains(c)
}
