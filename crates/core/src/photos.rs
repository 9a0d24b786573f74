//! Photos on import: decoded (which also proves they are images), downscaled to a
//! configurable size, re-encoded as JPEG, so that a field laptop's 12-megapixel
//! pictures do not fill a slow uplink. A phone's picture is turned upright by its EXIF
//! orientation first (the JPEG written carries no EXIF, so the turn must be in the
//! pixels). Signatures are kept exactly as drawn.
//!
//! Decoding runs with limits, so a crafted file cannot exhaust memory.

use std::io::Cursor;

use image::metadata::Orientation;
use image::{imageops::FilterType, DynamicImage, ImageDecoder, ImageFormat, ImageReader, Limits};

use crate::CoreError;

/// Longest side of an imported photo, in pixels, unless set otherwise.
pub const PHOTO_MAX_PX_DEFAULT: u32 = 1600;
pub const PHOTO_JPEG_QUALITY: u8 = 80;
/// The largest picture accepted before downscaling.
const DECODE_MAX_PX: u32 = 16_000;
const DECODE_MAX_ALLOC: u64 = 512 * 1024 * 1024;

/// A photo ready to store: its bytes and media type.
#[derive(Debug, Clone)]
pub struct PreparedPhoto {
    pub bytes: Vec<u8>,
    pub media_type: &'static str,
    pub original_bytes: usize,
    pub width: u32,
    pub height: u32,
}

/// The picture upright, its format, and the EXIF orientation it was turned by.
fn decode(bytes: &[u8], name: &str) -> Result<(DynamicImage, ImageFormat, Orientation), CoreError> {
    let bad = |why: String| {
        CoreError::Invalid(outpost_protocol::ValidationErrors::single(
            "photos", "invalid", why,
        ))
    };
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| bad(format!("{name} cannot be read: {e}")))?;
    let format = match reader.format() {
        Some(f @ (ImageFormat::Jpeg | ImageFormat::Png)) => f,
        _ => return Err(bad(format!("{name} is not a JPEG or PNG image"))),
    };
    let mut limits = Limits::default();
    limits.max_image_width = Some(DECODE_MAX_PX);
    limits.max_image_height = Some(DECODE_MAX_PX);
    limits.max_alloc = Some(DECODE_MAX_ALLOC);
    reader.limits(limits);
    let unreadable = |e: image::ImageError| bad(format!("{name} is not a readable image ({e})"));
    let mut decoder = reader.into_decoder().map_err(unreadable)?;
    // How the camera was held (EXIF Orientation): a phone stores a portrait picture on
    // its side and says so; the pixels are turned upright here, since the JPEG written
    // below carries no EXIF. Unreadable EXIF counts as upright.
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let mut img = DynamicImage::from_decoder(decoder).map_err(unreadable)?;
    img.apply_orientation(orientation);
    Ok((img, format, orientation))
}

/// Turn upright (EXIF), downscale (if larger than `max_px` on its longest side) and
/// re-encode as JPEG. An upright JPEG already within bounds is kept byte for byte.
pub fn prepare_photo(bytes: &[u8], name: &str, max_px: u32) -> Result<PreparedPhoto, CoreError> {
    let (img, format, orientation) = decode(bytes, name)?;
    let (w, h) = (img.width(), img.height());
    let max_px = max_px.clamp(64, DECODE_MAX_PX);
    if format == ImageFormat::Jpeg && w.max(h) <= max_px && orientation == Orientation::NoTransforms
    {
        return Ok(PreparedPhoto {
            bytes: bytes.to_vec(),
            media_type: "image/jpeg",
            original_bytes: bytes.len(),
            width: w,
            height: h,
        });
    }
    let scaled = if w.max(h) > max_px {
        img.resize(max_px, max_px, FilterType::Triangle)
    } else {
        img
    };
    let rgb = scaled.to_rgb8();
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, PHOTO_JPEG_QUALITY)
        .encode_image(&rgb)
        .map_err(|e| CoreError::Io(format!("cannot encode {name} as JPEG: {e}")))?;
    Ok(PreparedPhoto {
        media_type: "image/jpeg",
        original_bytes: bytes.len(),
        width: rgb.width(),
        height: rgb.height(),
        bytes: out,
    })
}

impl crate::Outpost {
    /// A stored photo as a `data:` URL for the order screen (the web view's CSP allows
    /// `data:` images), so a person sees it as it was stored: upright.
    pub fn photo_data_url(&self, hash: &str) -> Result<String, CoreError> {
        use base64::Engine as _;
        let bytes = self.attachment(hash)?;
        let media_type = match image::guess_format(&bytes) {
            Ok(ImageFormat::Png) => "image/png",
            Ok(ImageFormat::Jpeg) => "image/jpeg",
            _ => {
                return Err(CoreError::BadInput(format!(
                    "attachment {hash} is not a JPEG or PNG picture"
                )))
            }
        };
        Ok(format!(
            "data:{media_type};base64,{}",
            base64::engine::general_purpose::STANDARD.encode(&bytes)
        ))
    }
}

/// A synthetic camera-like photo (gradient with sensor noise), for demos, tests and
/// benchmarks.
pub fn synthetic_photo(width: u32, height: u32, seed: u32) -> Vec<u8> {
    let mut x = seed.wrapping_mul(2_654_435_761).max(1);
    let img = image::RgbImage::from_fn(width, height, |px, py| {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let noise = (x & 0x7) as i32 - 4;
        let r = ((px * 255 / width.max(1)) as i32 + noise).clamp(0, 255) as u8;
        let g = ((py * 255 / height.max(1)) as i32 + noise).clamp(0, 255) as u8;
        let b = (((px + py) * 127 / (width + height).max(1)) as i32 + noise).clamp(0, 255) as u8;
        image::Rgb([r, g, b])
    });
    let mut out = Vec::new();
    let _ = image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 92).encode_image(&img);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_large_photo_is_downscaled_to_the_configured_size() {
        let big = synthetic_photo(4000, 3000, 1);
        let p = prepare_photo(&big, "big.jpg", 1600).expect("photo");
        assert_eq!((p.width, p.height), (1600, 1200));
        assert!(
            p.bytes.len() < big.len() / 3,
            "{} vs {}",
            p.bytes.len(),
            big.len()
        );
        assert_eq!(p.media_type, "image/jpeg");
    }

    #[test]
    fn a_small_jpeg_is_kept_byte_for_byte() {
        let small = synthetic_photo(800, 600, 2);
        let p = prepare_photo(&small, "small.jpg", 1600).expect("photo");
        assert_eq!(p.bytes, small);
    }

    /// `jpeg` with an EXIF APP1 segment saying how the camera was held (`orientation`,
    /// 1–8; 6: the picture is stored on its side and shown turned 90° clockwise), as a
    /// phone writes it.
    fn with_exif_orientation(jpeg: &[u8], orientation: u16) -> Vec<u8> {
        let mut tiff = Vec::new();
        tiff.extend_from_slice(b"II*\0"); // little-endian TIFF
        tiff.extend_from_slice(&8u32.to_le_bytes()); // the first IFD follows
        tiff.extend_from_slice(&1u16.to_le_bytes()); // one entry
        tiff.extend_from_slice(&0x0112u16.to_le_bytes()); // Orientation
        tiff.extend_from_slice(&3u16.to_le_bytes()); // SHORT
        tiff.extend_from_slice(&1u32.to_le_bytes()); // one value
        tiff.extend_from_slice(&orientation.to_le_bytes());
        tiff.extend_from_slice(&[0, 0]); // padding of the value field
        tiff.extend_from_slice(&0u32.to_le_bytes()); // no next IFD
        let mut app1 = b"Exif\0\0".to_vec();
        app1.extend_from_slice(&tiff);
        let mut out = jpeg[..2].to_vec(); // SOI
        out.extend_from_slice(&[0xFF, 0xE1]);
        out.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
        out.extend_from_slice(&app1);
        out.extend_from_slice(&jpeg[2..]);
        out
    }

    #[test]
    fn a_portrait_photo_from_a_phone_keeps_its_orientation() {
        // Stored 2000×1000 on its side, to be shown turned: a portrait picture.
        let phone = with_exif_orientation(&synthetic_photo(2000, 1000, 3), 6);
        let p = prepare_photo(&phone, "portrait.jpg", 1600).expect("photo");
        assert_eq!((p.width, p.height), (800, 1600), "upright, then downscaled");
        let shown = image::load_from_memory(&p.bytes).expect("a JPEG");
        assert_eq!((shown.width(), shown.height()), (800, 1600));
        // A small one is turned too, not kept on its side.
        let small = with_exif_orientation(&synthetic_photo(600, 300, 4), 6);
        let p = prepare_photo(&small, "small-portrait.jpg", 1600).expect("photo");
        assert_eq!((p.width, p.height), (300, 600));
        let shown = image::load_from_memory(&p.bytes).expect("a JPEG");
        assert_eq!((shown.width(), shown.height()), (300, 600));
        // Upright already (orientation 1): kept byte for byte.
        let upright = with_exif_orientation(&synthetic_photo(600, 300, 5), 1);
        assert_eq!(
            prepare_photo(&upright, "u.jpg", 1600).expect("photo").bytes,
            upright
        );
    }

    #[test]
    fn a_file_that_is_not_an_image_is_refused_with_its_name() {
        let err = prepare_photo(b"GIF89a....", "scan.gif", 1600).expect_err("not an image");
        assert!(err.field_errors().is_some());
        let err =
            prepare_photo(b"\x89PNG\r\n\x1a\ngarbage", "broken.png", 1600).expect_err("damaged");
        assert!(err.field_errors().expect("field errors").errors[0]
            .message
            .contains("broken.png"));
    }
}
