//! PNG encoding of an `Rgba` image (native only; the browser draws to a canvas instead).

use super::Rgba;
use crate::error::{Error, Result};

pub fn encode(img: &Rgba) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut out, img.width as u32, img.height as u32);
        enc.set_color(png::ColorType::Rgba);
        enc.set_depth(png::BitDepth::Eight);
        let mut w = enc.write_header().map_err(|e| Error::Io(e.to_string()))?;
        w.write_image_data(&img.pixels).map_err(|e| Error::Io(e.to_string()))?;
    }
    Ok(out)
}
