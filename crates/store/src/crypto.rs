//! SQLCipher's page crypto through `ring` and RustCrypto's AES, registered as SQLCipher's
//! crypto provider.
//!
//! SQLCipher encrypts each page with AES-256-CBC under a fresh random IV and
//! authenticates it with an HMAC; it asks a *provider* for those primitives. Its built-in
//! provider calls OpenSSL 3.0 through the EVP interface and, for every page, fetches the
//! algorithms, builds and frees two contexts and takes the RNG lock: on this project's
//! machine that costs about as much as the AES and the HMAC themselves (measured with
//! `perf`, docs/benchmarks.md, "Local write path"). This provider computes exactly the
//! same functions (AES-256-CBC without padding, HMAC-SHA1/256/512, PBKDF2, random bytes)
//! with no per-call set-up:
//!
//! - HMAC, PBKDF2 and random bytes: `ring` (SHA-256 with the CPU's SHA instructions);
//! - AES-256-CBC: the `aes` and `cbc` crates (AES-NI when the CPU has it, detected at run
//!   time; key schedules are wiped on drop).
//!
//! The file format does not change: a database written through this provider opens with
//! SQLCipher's OpenSSL provider and the other way round (tests/page_crypto.rs).
//! [`install`] runs once per process, before the first connection is keyed; every codec
//! context made afterwards uses this provider.

// The only module in the workspace allowed `unsafe`: SQLCipher calls these functions
// through C pointers. Every pointer is checked for null and every length for sign before
// a slice is made; nothing here panics (a panic cannot cross the C boundary).
#![allow(unsafe_code)]

use std::ffi::{c_char, c_int, c_uchar, c_void};
use std::num::NonZeroU32;
use std::sync::OnceLock;

use aes::Aes256;
use cbc::cipher::block_padding::NoPadding;
use cbc::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use ring::rand::{SecureRandom, SystemRandom};
use ring::{hmac, pbkdf2};

const SQLITE_OK: c_int = 0;
const SQLITE_ERROR: c_int = 1;

// SQLCipher's constants (sqlcipher/src/sqlcipher.h).
const SQLCIPHER_ENCRYPT: c_int = 1;
const SQLCIPHER_DECRYPT: c_int = 0;
const SQLCIPHER_HMAC_SHA1: c_int = 0;
const SQLCIPHER_HMAC_SHA256: c_int = 1;
const SQLCIPHER_HMAC_SHA512: c_int = 2;

const KEY_BYTES: c_int = 32;
const BLOCK_BYTES: c_int = 16;

/// The name `PRAGMA cipher_provider` reports.
pub const PROVIDER_NAME: &str = "outpost-ring-aes";
const PROVIDER_NAME_C: &[u8] = b"outpost-ring-aes\0";
const PROVIDER_VERSION_C: &[u8] = b"ring 0.17, aes 0.8, cbc 0.1\0";
const CIPHER_NAME_C: &[u8] = b"aes-256-cbc\0";

type Hmac = unsafe extern "C" fn(
    *mut c_void,
    c_int,
    *const c_uchar,
    c_int,
    *const c_uchar,
    c_int,
    *const c_uchar,
    c_int,
    *mut c_uchar,
) -> c_int;
type Kdf = unsafe extern "C" fn(
    *mut c_void,
    c_int,
    *const c_uchar,
    c_int,
    *const c_uchar,
    c_int,
    c_int,
    c_int,
    *mut c_uchar,
) -> c_int;
type Cipher = unsafe extern "C" fn(
    *mut c_void,
    c_int,
    *const c_uchar,
    c_int,
    *const c_uchar,
    *const c_uchar,
    c_int,
    *mut c_uchar,
) -> c_int;

/// `struct sqlcipher_provider`, field for field.
#[repr(C)]
struct Provider {
    init: Option<unsafe extern "C" fn() -> c_int>,
    shutdown: Option<unsafe extern "C" fn()>,
    get_provider_name: Option<unsafe extern "C" fn(*mut c_void) -> *const c_char>,
    add_random: Option<unsafe extern "C" fn(*mut c_void, *const c_void, c_int) -> c_int>,
    random: Option<unsafe extern "C" fn(*mut c_void, *mut c_void, c_int) -> c_int>,
    hmac: Option<Hmac>,
    kdf: Option<Kdf>,
    cipher: Option<Cipher>,
    get_cipher: Option<unsafe extern "C" fn(*mut c_void) -> *const c_char>,
    get_key_sz: Option<unsafe extern "C" fn(*mut c_void) -> c_int>,
    get_iv_sz: Option<unsafe extern "C" fn(*mut c_void) -> c_int>,
    get_block_sz: Option<unsafe extern "C" fn(*mut c_void) -> c_int>,
    get_hmac_sz: Option<unsafe extern "C" fn(*mut c_void, c_int) -> c_int>,
    ctx_init: Option<unsafe extern "C" fn(*mut *mut c_void) -> c_int>,
    ctx_free: Option<unsafe extern "C" fn(*mut *mut c_void) -> c_int>,
    fips_status: Option<unsafe extern "C" fn(*mut c_void) -> c_int>,
    get_provider_version: Option<unsafe extern "C" fn(*mut c_void) -> *const c_char>,
    next: *mut Provider,
}

extern "C" {
    // All three are exported by the SQLCipher that libsqlite3-sys compiles in.
    fn sqlcipher_register_provider(p: *mut Provider) -> c_int;
    fn sqlcipher_get_provider() -> *mut Provider;
    fn sqlcipher_malloc(size: u64) -> *mut c_void;
}

/// Which implementation SQLCipher uses for the page crypto of connections keyed from
/// now on. Both read and write the same format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PageCrypto {
    /// This module: `ring` and RustCrypto's AES (what the application uses).
    Outpost,
    /// SQLCipher's built-in provider (OpenSSL), kept for comparison and compatibility
    /// tests.
    Builtin,
}

/// The two providers, as addresses (raw pointers are not `Sync`).
struct Providers {
    outpost: usize,
    builtin: usize,
}

fn providers() -> Result<&'static Providers, String> {
    static PROVIDERS: OnceLock<Result<Providers, String>> = OnceLock::new();
    PROVIDERS
        .get_or_init(|| {
            // SAFETY: sqlite3_initialize is safe to call at any time and more than once;
            // it runs SQLCipher's own set-up (its mutexes and built-in provider), which
            // registering needs. The provider is allocated on SQLCipher's heap because
            // sqlite3_shutdown frees registered providers with sqlcipher_free; every
            // field is written before it is registered, and it is never freed by us.
            unsafe {
                let rc = rusqlite::ffi::sqlite3_initialize();
                if rc != SQLITE_OK {
                    return Err(format!("sqlite3_initialize returned {rc}"));
                }
                let builtin = sqlcipher_get_provider();
                if builtin.is_null() {
                    return Err("SQLCipher has no crypto provider".into());
                }
                let p = sqlcipher_malloc(std::mem::size_of::<Provider>() as u64) as *mut Provider;
                if p.is_null() {
                    return Err("no memory for the crypto provider".into());
                }
                p.write(Provider {
                    init: None,
                    shutdown: None,
                    get_provider_name: Some(provider_name),
                    add_random: Some(add_random),
                    random: Some(random),
                    hmac: Some(hmac_fn),
                    kdf: Some(kdf),
                    cipher: Some(cipher),
                    get_cipher: Some(cipher_name),
                    get_key_sz: Some(key_size),
                    get_iv_sz: Some(block_size),
                    get_block_sz: Some(block_size),
                    get_hmac_sz: Some(hmac_size),
                    ctx_init: Some(ctx_init),
                    ctx_free: Some(ctx_free),
                    fips_status: Some(fips_status),
                    get_provider_version: Some(provider_version),
                    next: std::ptr::null_mut(),
                });
                let rc = sqlcipher_register_provider(p);
                if rc != SQLITE_OK {
                    return Err(format!("sqlcipher_register_provider returned {rc}"));
                }
                Ok(Providers {
                    outpost: p as usize,
                    builtin: builtin as usize,
                })
            }
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// Make this module's provider SQLCipher's default, once per process, before the first
/// connection is keyed. Should SQLCipher refuse it, its built-in provider stays in use:
/// the same format, only slower (`outpost db check` shows which one is used).
pub(crate) fn install() {
    let _ = providers();
}

/// Choose the page crypto for connections keyed from now on, process-wide. For tests
/// and the write-path benchmark; the application always uses [`PageCrypto::Outpost`].
#[doc(hidden)]
pub fn use_page_crypto(which: PageCrypto) -> Result<(), String> {
    let p = providers()?;
    let chosen = match which {
        PageCrypto::Outpost => p.outpost,
        PageCrypto::Builtin => p.builtin,
    } as *mut Provider;
    // SAFETY: both pointers are providers SQLCipher already holds in its list (the
    // built-in one since its set-up, ours since `providers`); registering one that is
    // listed only moves it to the front, under SQLCipher's provider mutex.
    let rc = unsafe { sqlcipher_register_provider(chosen) };
    if rc != SQLITE_OK {
        return Err(format!("sqlcipher_register_provider returned {rc}"));
    }
    Ok(())
}

fn rng() -> &'static SystemRandom {
    static RNG: OnceLock<SystemRandom> = OnceLock::new();
    RNG.get_or_init(SystemRandom::new)
}

/// A byte slice from SQLCipher's pointer and length; `None` for a negative length or a
/// null pointer with a non-zero length.
///
/// # Safety
/// `ptr` must be valid for reads of `len` bytes for the returned lifetime.
unsafe fn bytes<'a>(ptr: *const c_uchar, len: c_int) -> Option<&'a [u8]> {
    let len = usize::try_from(len).ok()?;
    if len == 0 {
        return Some(&[]);
    }
    if ptr.is_null() {
        return None;
    }
    Some(std::slice::from_raw_parts(ptr, len))
}

unsafe extern "C" fn provider_name(_ctx: *mut c_void) -> *const c_char {
    PROVIDER_NAME_C.as_ptr().cast()
}

unsafe extern "C" fn provider_version(_ctx: *mut c_void) -> *const c_char {
    PROVIDER_VERSION_C.as_ptr().cast()
}

unsafe extern "C" fn cipher_name(_ctx: *mut c_void) -> *const c_char {
    CIPHER_NAME_C.as_ptr().cast()
}

unsafe extern "C" fn key_size(_ctx: *mut c_void) -> c_int {
    KEY_BYTES
}

unsafe extern "C" fn block_size(_ctx: *mut c_void) -> c_int {
    BLOCK_BYTES
}

unsafe extern "C" fn hmac_size(_ctx: *mut c_void, algorithm: c_int) -> c_int {
    match algorithm {
        SQLCIPHER_HMAC_SHA1 => 20,
        SQLCIPHER_HMAC_SHA256 => 32,
        SQLCIPHER_HMAC_SHA512 => 64,
        _ => 0,
    }
}

unsafe extern "C" fn ctx_init(ctx: *mut *mut c_void) -> c_int {
    // No per-context state: ring and the AES crates keep none between calls.
    if !ctx.is_null() {
        *ctx = std::ptr::null_mut();
    }
    SQLITE_OK
}

unsafe extern "C" fn ctx_free(ctx: *mut *mut c_void) -> c_int {
    if !ctx.is_null() {
        *ctx = std::ptr::null_mut();
    }
    SQLITE_OK
}

unsafe extern "C" fn fips_status(_ctx: *mut c_void) -> c_int {
    0
}

unsafe extern "C" fn add_random(
    _ctx: *mut c_void,
    _buffer: *const c_void,
    _length: c_int,
) -> c_int {
    // The operating system's generator needs no help (`PRAGMA cipher_add_random`).
    SQLITE_OK
}

unsafe extern "C" fn random(_ctx: *mut c_void, buffer: *mut c_void, length: c_int) -> c_int {
    let Ok(len) = usize::try_from(length) else {
        return SQLITE_ERROR;
    };
    if len == 0 {
        return SQLITE_OK;
    }
    if buffer.is_null() {
        return SQLITE_ERROR;
    }
    let out = std::slice::from_raw_parts_mut(buffer.cast::<u8>(), len);
    match rng().fill(out) {
        Ok(()) => SQLITE_OK,
        Err(_) => SQLITE_ERROR,
    }
}

#[allow(clippy::too_many_arguments)]
unsafe extern "C" fn hmac_fn(
    _ctx: *mut c_void,
    algorithm: c_int,
    key: *const c_uchar,
    key_sz: c_int,
    input: *const c_uchar,
    input_sz: c_int,
    input2: *const c_uchar,
    input2_sz: c_int,
    out: *mut c_uchar,
) -> c_int {
    let alg = match algorithm {
        SQLCIPHER_HMAC_SHA1 => hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY,
        SQLCIPHER_HMAC_SHA256 => hmac::HMAC_SHA256,
        SQLCIPHER_HMAC_SHA512 => hmac::HMAC_SHA512,
        _ => return SQLITE_ERROR,
    };
    if input.is_null() || out.is_null() {
        return SQLITE_ERROR;
    }
    let (Some(key), Some(input)) = (bytes(key, key_sz), bytes(input, input_sz)) else {
        return SQLITE_ERROR;
    };
    let mut context = hmac::Context::with_key(&hmac::Key::new(alg, key));
    context.update(input);
    if !input2.is_null() {
        let Some(input2) = bytes(input2, input2_sz) else {
            return SQLITE_ERROR;
        };
        context.update(input2);
    }
    let tag = context.sign();
    let tag = tag.as_ref();
    std::ptr::copy_nonoverlapping(tag.as_ptr(), out, tag.len());
    SQLITE_OK
}

#[allow(clippy::too_many_arguments)]
unsafe extern "C" fn kdf(
    _ctx: *mut c_void,
    algorithm: c_int,
    pass: *const c_uchar,
    pass_sz: c_int,
    salt: *const c_uchar,
    salt_sz: c_int,
    workfactor: c_int,
    key_sz: c_int,
    key: *mut c_uchar,
) -> c_int {
    let alg = match algorithm {
        SQLCIPHER_HMAC_SHA1 => pbkdf2::PBKDF2_HMAC_SHA1,
        SQLCIPHER_HMAC_SHA256 => pbkdf2::PBKDF2_HMAC_SHA256,
        SQLCIPHER_HMAC_SHA512 => pbkdf2::PBKDF2_HMAC_SHA512,
        _ => return SQLITE_ERROR,
    };
    let Some(iterations) = u32::try_from(workfactor).ok().and_then(NonZeroU32::new) else {
        return SQLITE_ERROR;
    };
    let (Some(pass), Some(salt)) = (bytes(pass, pass_sz), bytes(salt, salt_sz)) else {
        return SQLITE_ERROR;
    };
    let Ok(key_len) = usize::try_from(key_sz) else {
        return SQLITE_ERROR;
    };
    if key.is_null() || key_len == 0 {
        return SQLITE_ERROR;
    }
    let out = std::slice::from_raw_parts_mut(key, key_len);
    pbkdf2::derive(alg, iterations, salt, pass, out);
    SQLITE_OK
}

type Encryptor = cbc::Encryptor<Aes256>;
type Decryptor = cbc::Decryptor<Aes256>;

#[allow(clippy::too_many_arguments)]
unsafe extern "C" fn cipher(
    _ctx: *mut c_void,
    mode: c_int,
    key: *const c_uchar,
    key_sz: c_int,
    iv: *const c_uchar,
    input: *const c_uchar,
    input_sz: c_int,
    out: *mut c_uchar,
) -> c_int {
    if key_sz != KEY_BYTES || iv.is_null() || input.is_null() || out.is_null() {
        return SQLITE_ERROR;
    }
    let Ok(len) = usize::try_from(input_sz) else {
        return SQLITE_ERROR;
    };
    if len % BLOCK_BYTES as usize != 0 {
        return SQLITE_ERROR;
    }
    let key = std::slice::from_raw_parts(key, KEY_BYTES as usize);
    let iv = std::slice::from_raw_parts(iv, BLOCK_BYTES as usize);
    // SQLCipher passes separate buffers; in place is handled too. Partly overlapping
    // buffers would be a caller bug: refused rather than aliased.
    let (in_start, out_start) = (input as usize, out as usize);
    if in_start != out_start && in_start < out_start + len && out_start < in_start + len {
        return SQLITE_ERROR;
    }
    let ok = match mode {
        SQLCIPHER_ENCRYPT => {
            let Ok(enc) = Encryptor::new_from_slices(key, iv) else {
                return SQLITE_ERROR;
            };
            if in_start == out_start {
                let buf = std::slice::from_raw_parts_mut(out, len);
                enc.encrypt_padded_mut::<NoPadding>(buf, len).is_ok()
            } else {
                let src = std::slice::from_raw_parts(input, len);
                let dst = std::slice::from_raw_parts_mut(out, len);
                enc.encrypt_padded_b2b_mut::<NoPadding>(src, dst).is_ok()
            }
        }
        SQLCIPHER_DECRYPT => {
            let Ok(dec) = Decryptor::new_from_slices(key, iv) else {
                return SQLITE_ERROR;
            };
            if in_start == out_start {
                let buf = std::slice::from_raw_parts_mut(out, len);
                dec.decrypt_padded_mut::<NoPadding>(buf).is_ok()
            } else {
                let src = std::slice::from_raw_parts(input, len);
                let dst = std::slice::from_raw_parts_mut(out, len);
                dec.decrypt_padded_b2b_mut::<NoPadding>(src, dst).is_ok()
            }
        }
        _ => false,
    };
    if ok {
        SQLITE_OK
    } else {
        SQLITE_ERROR
    }
}
