//! The proxy-wasm host calls our filters make, wrapped so that every status the
//! host can return becomes a `Result` and no byte sequence can panic.
//!
//! Why not the SDK's wrappers: proxy-wasm 0.2.5 `panic!`s on any status it does
//! not expect (52 places) and `unwrap`s UTF-8 conversions of header maps, so a
//! client sending a header value with obs-text bytes (which Envoy accepts) would
//! kill the VM the moment a filter read it. Here statuses are plain integers (an
//! unknown one is an error, not undefined behaviour), strings are decoded lossily,
//! and the SDK is left to do what it does well: dispatching contexts.

#![allow(unsafe_code)]

use std::ptr::null_mut;

use proxy_wasm::types::MapType;

/// A host status other than Ok, as the ABI numbers it (e.g. 1 NotFound, 2 BadArgument).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostError(pub u32);

const OK: u32 = 0;
const NOT_FOUND: u32 = 1;
/// `proxy_set_shared_data`'s answer when the value changed since it was read.
pub const CAS_MISMATCH: HostError = HostError(8);
/// `BufferType::HttpCallResponseBody`.
const HTTP_CALL_RESPONSE_BODY: u32 = 4;
/// `BufferType::GrpcReceiveBuffer`.
const GRPC_RECEIVE_BUFFER: u32 = 5;
/// `StreamType::HttpRequest`.
const HTTP_REQUEST_STREAM: u32 = 0;

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_get_header_map_value(
        map_type: u32,
        key_data: *const u8,
        key_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> u32;
    fn proxy_get_header_map_pairs(
        map_type: u32,
        return_map_data: *mut *mut u8,
        return_map_size: *mut usize,
    ) -> u32;
    fn proxy_replace_header_map_value(
        map_type: u32,
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_add_header_map_value(
        map_type: u32,
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_remove_header_map_value(map_type: u32, key_data: *const u8, key_size: usize) -> u32;
    fn proxy_get_property(
        path_data: *const u8,
        path_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> u32;
    fn proxy_increment_metric(metric_id: u32, offset: i64) -> u32;
    fn proxy_get_current_time_nanoseconds(return_time: *mut u64) -> u32;
    fn proxy_send_local_response(
        status_code: u32,
        status_code_details_data: *const u8,
        status_code_details_size: usize,
        body_data: *const u8,
        body_size: usize,
        headers_data: *const u8,
        headers_size: usize,
        grpc_status: i32,
    ) -> u32;
    fn proxy_get_shared_data(
        key_data: *const u8,
        key_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
        return_cas: *mut u32,
    ) -> u32;
    fn proxy_set_shared_data(
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
        cas: u32,
    ) -> u32;
    fn proxy_get_buffer_bytes(
        buffer_type: u32,
        start: usize,
        max_size: usize,
        return_buffer_data: *mut *mut u8,
        return_buffer_size: *mut usize,
    ) -> u32;
    fn proxy_set_effective_context(context_id: u32) -> u32;
    fn proxy_continue_stream(stream_type: u32) -> u32;
    fn proxy_set_tick_period_milliseconds(period: u32) -> u32;
    fn proxy_call_foreign_function(
        function_name_data: *const u8,
        function_name_size: usize,
        arguments_data: *const u8,
        arguments_size: usize,
        results_data: *mut *mut u8,
        results_size: *mut usize,
    ) -> u32;
}

#[link(wasm_import_module = "wasi_snapshot_preview1")]
extern "C" {
    /// WASI's random source (Envoy provides it); returns a WASI errno, 0 on success.
    #[link_name = "random_get"]
    fn wasi_random_get(buf: *mut u8, buf_len: usize) -> u32;
}

fn check(status: u32) -> Result<(), HostError> {
    if status == OK {
        Ok(())
    } else {
        Err(HostError(status))
    }
}

/// Takes ownership of a buffer the host allocated in our memory (through the
/// SDK's `proxy_on_memory_allocate`, which hands out boxed slices of exactly `size`).
fn take_buffer(data: *mut u8, size: usize) -> Option<Vec<u8>> {
    if data.is_null() {
        return None;
    }
    // SAFETY: the host wrote `size` bytes into a block that proxy_on_memory_allocate
    // allocated as a Box<[u8]> of length `size`; we are its only owner now.
    Some(unsafe { Vec::from_raw_parts(data, size, size) })
}

/// Runs a host call that returns a buffer; NotFound is `Ok(None)`.
fn call_returning_buffer(
    call: impl FnOnce(*mut *mut u8, *mut usize) -> u32,
) -> Result<Option<Vec<u8>>, HostError> {
    let mut data: *mut u8 = null_mut();
    let mut size: usize = 0;
    match call(&mut data, &mut size) {
        OK => Ok(take_buffer(data, size)),
        NOT_FOUND => Ok(None),
        status => Err(HostError(status)),
    }
}

/// First value of header `key`, decoded lossily; None when absent.
pub fn get_header(map: MapType, key: &str) -> Result<Option<String>, HostError> {
    // SAFETY: pointers are to live locals/slices for the duration of the call.
    let buffer = call_returning_buffer(|data, size| unsafe {
        proxy_get_header_map_value(map as u32, key.as_ptr(), key.len(), data, size)
    })?;
    Ok(buffer.map(|b| String::from_utf8_lossy(&b).into_owned()))
}

/// Every header of a map, in order, decoded lossily.
pub fn get_headers(map: MapType) -> Result<Vec<(String, String)>, HostError> {
    // SAFETY: as above.
    let buffer = call_returning_buffer(|data, size| unsafe {
        proxy_get_header_map_pairs(map as u32, data, size)
    })?;
    Ok(buffer.map(|b| decode_pairs(&b)).unwrap_or_default())
}

pub fn replace_header(map: MapType, key: &str, value: &str) -> Result<(), HostError> {
    // SAFETY: as above.
    check(unsafe {
        proxy_replace_header_map_value(
            map as u32,
            key.as_ptr(),
            key.len(),
            value.as_ptr(),
            value.len(),
        )
    })
}

pub fn add_header(map: MapType, key: &str, value: &str) -> Result<(), HostError> {
    // SAFETY: as above.
    check(unsafe {
        proxy_add_header_map_value(
            map as u32,
            key.as_ptr(),
            key.len(),
            value.as_ptr(),
            value.len(),
        )
    })
}

pub fn remove_header(map: MapType, key: &str) -> Result<(), HostError> {
    // SAFETY: as above.
    check(unsafe { proxy_remove_header_map_value(map as u32, key.as_ptr(), key.len()) })
}

/// An Envoy attribute by path (e.g. `["xds", "route_name"]`); None when absent.
pub fn get_property(path: &[&str]) -> Result<Option<Vec<u8>>, HostError> {
    // The ABI takes the path as its parts, each followed by a NUL.
    let mut encoded = Vec::with_capacity(path.iter().map(|p| p.len() + 1).sum());
    for part in path {
        encoded.extend_from_slice(part.as_bytes());
        encoded.push(0);
    }
    // SAFETY: as above.
    call_returning_buffer(|data, size| unsafe {
        proxy_get_property(encoded.as_ptr(), encoded.len(), data, size)
    })
}

pub fn increment_metric(id: u32, offset: i64) -> Result<(), HostError> {
    // SAFETY: no pointers.
    check(unsafe { proxy_increment_metric(id, offset) })
}

/// Wall-clock seconds since the Unix epoch, as Envoy's clock says.
pub fn now_seconds() -> Result<u64, HostError> {
    Ok(now_nanos()? / 1_000_000_000)
}

/// Wall-clock milliseconds since the Unix epoch.
pub fn now_millis() -> Result<u64, HostError> {
    Ok(now_nanos()? / 1_000_000)
}

fn now_nanos() -> Result<u64, HostError> {
    let mut nanos: u64 = 0;
    // SAFETY: the host writes one u64 into a live local.
    check(unsafe { proxy_get_current_time_nanoseconds(&mut nanos) })?;
    Ok(nanos)
}

/// A shared-data value (shared by every VM of the plugin's vm_id, i.e. by all
/// Envoy workers) and its compare-and-swap version; `(None, 0)` when absent.
pub fn get_shared_data(key: &str) -> Result<(Option<Vec<u8>>, u32), HostError> {
    let mut cas: u32 = 0;
    // SAFETY: pointers are to a live slice and live locals for the duration of the call.
    let value = call_returning_buffer(|data, size| unsafe {
        proxy_get_shared_data(key.as_ptr(), key.len(), data, size, &mut cas)
    })?;
    Ok((value, cas))
}

/// Writes a shared-data value if its version is still `cas` (0: unconditionally);
/// [`CAS_MISMATCH`] when another VM wrote it in between.
pub fn set_shared_data(key: &str, value: &[u8], cas: u32) -> Result<(), HostError> {
    // SAFETY: pointers are to live slices for the duration of the call.
    check(unsafe {
        proxy_set_shared_data(key.as_ptr(), key.len(), value.as_ptr(), value.len(), cas)
    })
}

/// The body of the HTTP call response being delivered (at most `size` bytes).
pub fn http_call_response_body(size: usize) -> Result<Option<Vec<u8>>, HostError> {
    // SAFETY: the host allocates the result through proxy_on_memory_allocate.
    call_returning_buffer(|data, out| unsafe {
        proxy_get_buffer_bytes(HTTP_CALL_RESPONSE_BODY, 0, size, data, out)
    })
}

/// The message of the gRPC call response being delivered (at most `size` bytes).
pub fn grpc_call_response_body(size: usize) -> Result<Option<Vec<u8>>, HostError> {
    // SAFETY: the host allocates the result through proxy_on_memory_allocate.
    call_returning_buffer(|data, out| unsafe {
        proxy_get_buffer_bytes(GRPC_RECEIVE_BUFFER, 0, size, data, out)
    })
}

/// Fills `buf` from the host's cryptographic random source (WASI `random_get`).
/// An error is the WASI errno. (std's `RandomState` reads the same source but
/// panics when it fails.)
pub fn random_bytes(buf: &mut [u8]) -> Result<(), HostError> {
    // SAFETY: the host writes exactly `buf.len()` bytes into a live slice.
    check(unsafe { wasi_random_get(buf.as_mut_ptr(), buf.len()) })
}

/// Makes later host calls in this callback act on another context (a paused
/// stream, from the root context). Fails when that context is gone.
pub fn set_effective_context(context_id: u32) -> Result<(), HostError> {
    // SAFETY: no pointers.
    check(unsafe { proxy_set_effective_context(context_id) })
}

/// Resumes the effective context's paused request.
pub fn continue_request() -> Result<(), HostError> {
    // SAFETY: no pointers.
    check(unsafe { proxy_continue_stream(HTTP_REQUEST_STREAM) })
}

/// How often the root context's `on_tick` runs.
pub fn set_tick_period_millis(period: u32) -> Result<(), HostError> {
    // SAFETY: no pointers.
    check(unsafe { proxy_set_tick_period_milliseconds(period) })
}

/// Answers the request locally. Envoy turns it into a gRPC trailers-only response
/// with `grpc_status` (and the body as grpc-message) when the request is gRPC, and
/// ignores `grpc_status` otherwise.
pub fn send_local_response(
    status: u32,
    headers: &[(&str, &str)],
    body: &str,
    grpc_status: u32,
) -> Result<(), HostError> {
    let headers = encode_pairs(headers);
    let grpc = i32::try_from(grpc_status).unwrap_or(-1);
    // SAFETY: pointers are to live slices for the duration of the call.
    check(unsafe {
        proxy_send_local_response(
            status,
            std::ptr::null(),
            0,
            body.as_ptr(),
            body.len(),
            headers.as_ptr(),
            headers.len(),
            grpc,
        )
    })
}

/// Calls an Envoy foreign function by name with no arguments; NotFound when this
/// Envoy does not have it.
pub fn call_foreign_function(name: &str) -> Result<(), HostError> {
    // SAFETY: as above; any result buffer is taken back and dropped.
    let result = call_returning_buffer(|data, size| unsafe {
        proxy_call_foreign_function(name.as_ptr(), name.len(), std::ptr::null(), 0, data, size)
    });
    result.map(drop)
}

/// The ABI's header-map serialization (see [`decode_pairs`]).
pub fn encode_pairs(pairs: &[(&str, &str)]) -> Vec<u8> {
    let size = 4 + pairs
        .iter()
        .map(|(k, v)| 8 + k.len() + v.len() + 2)
        .sum::<usize>();
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(&(pairs.len() as u32).to_le_bytes());
    for (k, v) in pairs {
        out.extend_from_slice(&(k.len() as u32).to_le_bytes());
        out.extend_from_slice(&(v.len() as u32).to_le_bytes());
    }
    for (k, v) in pairs {
        out.extend_from_slice(k.as_bytes());
        out.push(0);
        out.extend_from_slice(v.as_bytes());
        out.push(0);
    }
    out
}

/// Decodes the ABI's header-map serialization: a little-endian u32 count, then a
/// (key length, value length) u32 pair per entry, then each key and value followed
/// by a NUL. A truncated or inconsistent buffer yields the entries read so far.
pub fn decode_pairs(bytes: &[u8]) -> Vec<(String, String)> {
    let u32_at = |at: usize| -> Option<usize> {
        let b = bytes.get(at..at + 4)?;
        Some(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    let Some(count) = u32_at(0) else {
        return Vec::new();
    };
    let mut out = Vec::with_capacity(count.min(1024));
    let mut data = 4usize.saturating_add(count.saturating_mul(8));
    for i in 0..count {
        let (Some(key_len), Some(value_len)) = (u32_at(4 + i * 8), u32_at(8 + i * 8)) else {
            break;
        };
        let key = bytes.get(data..data.saturating_add(key_len));
        data = data.saturating_add(key_len).saturating_add(1);
        let value = bytes.get(data..data.saturating_add(value_len));
        data = data.saturating_add(value_len).saturating_add(1);
        let (Some(key), Some(value)) = (key, value) else {
            break;
        };
        out.push((
            String::from_utf8_lossy(key).into_owned(),
            String::from_utf8_lossy(value).into_owned(),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::decode_pairs;

    fn encode(pairs: &[(&[u8], &[u8])]) -> Vec<u8> {
        let mut out = (pairs.len() as u32).to_le_bytes().to_vec();
        for (k, v) in pairs {
            out.extend((k.len() as u32).to_le_bytes());
            out.extend((v.len() as u32).to_le_bytes());
        }
        for (k, v) in pairs {
            out.extend_from_slice(k);
            out.push(0);
            out.extend_from_slice(v);
            out.push(0);
        }
        out
    }

    #[test]
    fn encode_and_decode_agree() {
        let pairs = [
            ("www-authenticate", "Bearer realm=\"x\""),
            ("content-type", "text/plain"),
        ];
        let back = decode_pairs(&super::encode_pairs(&pairs));
        assert_eq!(back, pairs.map(|(k, v)| (k.to_string(), v.to_string())));
    }

    #[test]
    fn decodes_pairs_and_survives_any_bytes() {
        let bytes = encode(&[(b":path", b"/"), (b"x-obs", b"caf\xe9 \xff")]);
        assert_eq!(
            decode_pairs(&bytes),
            [
                (":path".to_string(), "/".to_string()),
                ("x-obs".into(), "caf\u{fffd} \u{fffd}".into())
            ]
        );
        for cut in 0..bytes.len() {
            let _ = decode_pairs(&bytes[..cut]);
        }
        assert!(decode_pairs(&[0xff, 0xff, 0xff, 0xff]).is_empty());
        assert!(decode_pairs(&[]).is_empty());
    }
}
