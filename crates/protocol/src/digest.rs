//! SHA-256 as lowercase hex: the name of an attachment on the wire, and the hash of a
//! pushed body or a token on the server. One function for both sides, so a device and
//! the server always name the same bytes the same way.
//!
//! (On the device, attachment *files* may be named otherwise; the wire name is this.)

/// SHA-256 of `bytes`, as 64 lowercase hex digits.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref())
}

/// The name an attachment (photo, signature) has on the wire.
pub fn attachment_hash(bytes: &[u8]) -> String {
    sha256_hex(bytes)
}

/// [`sha256_hex`] over bytes that arrive in parts (an upload's chunks).
pub struct Sha256Hex(ring::digest::Context);

impl Default for Sha256Hex {
    fn default() -> Self {
        Sha256Hex(ring::digest::Context::new(&ring::digest::SHA256))
    }
}

impl std::fmt::Debug for Sha256Hex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Sha256Hex")
    }
}

impl Sha256Hex {
    pub fn update(&mut self, part: &[u8]) {
        self.0.update(part);
    }

    pub fn finish(self) -> String {
        hex::encode(self.0.finish().as_ref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hash_is_sha256_in_lowercase_hex_whole_or_in_parts() {
        // SHA-256("abc"), from FIPS 180-2's examples.
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(sha256_hex(b"abc"), abc);
        assert_eq!(attachment_hash(b"abc"), abc);
        let mut h = Sha256Hex::default();
        h.update(b"a");
        h.update(b"bc");
        assert_eq!(h.finish(), abc);
    }
}
