//! Build script: copies `shaders/*.wgsl` into `OUT_DIR` with comments, indentation and repeated
//! spaces removed (the WGSL sources are ~60% comments and indentation, and they ship inside the
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

/// Drops `//` comments, leading/trailing whitespace and runs of spaces; keeps every newline.
fn strip(src: &str) -> String {
    let mut out = String::with_capacity(src.len());
    for line in src.lines() {
        let code = line.find("//").map_or(line, |i| &line[..i]);
        let mut prev_space = false;
        for c in code.trim().chars() {
            let space = c.is_whitespace();
            if !(space && prev_space) {
                out.push(if space { ' ' } else { c });
            }
            prev_space = space;
        }
        out.push('\n');
    }
    out
}
