//! The core's [`Host`] over Envoy's dynamic module callbacks, for the stream
//! whose hook is running. Everything Envoy hands back is copied out before the
//! hook returns (its buffers live only that long). A refused call is logged
//! and the request goes on, as the flows expect.

#![allow(unsafe_code)] // calls into Envoy through the declarations in `abi`

use tollgate_core::host::{Attribute, Direction, Host};

use crate::abi::{self, EnvoyBuffer, EnvoyHeader, FilterEnvoyPtr, ModuleBuffer};
use crate::log;

/// One stream, valid while the hook that made it runs.
pub struct StreamHost {
    filter: FilterEnvoyPtr,
}

impl StreamHost {
    /// # Safety
    /// `filter` must be the `filter_envoy_ptr` Envoy passed to the running hook.
    pub unsafe fn new(filter: FilterEnvoyPtr) -> StreamHost {
        StreamHost { filter }
    }

    pub fn filter(&self) -> FilterEnvoyPtr {
        self.filter
    }

    fn report(&self, op: &str, name: &str, done: bool) {
        if !done {
            log::warn(&format!("{op} of header {name} refused by Envoy"));
        }
    }
}

fn header_type(dir: Direction) -> u32 {
    match dir {
        Direction::Request => abi::REQUEST_HEADER,
        Direction::Response => abi::RESPONSE_HEADER,
    }
}

impl Host for StreamHost {
    fn headers(&mut self, dir: Direction) -> Vec<(String, String)> {
        let kind = header_type(dir);
        // SAFETY: a live filter pointer during its hook.
        let size =
            unsafe { abi::envoy_dynamic_module_callback_http_get_headers_size(self.filter, kind) };
        let empty = EnvoyHeader {
            key_ptr: std::ptr::null(),
            key_length: 0,
            value_ptr: std::ptr::null(),
            value_length: 0,
        };
        let mut headers = vec![empty; size];
        // SAFETY: the array holds exactly the `size` entries Envoy reported.
        let read = unsafe {
            abi::envoy_dynamic_module_callback_http_get_headers(
                self.filter,
                kind,
                headers.as_mut_ptr(),
            )
        };
        if !read {
            return Vec::new();
        }
        headers
            .into_iter()
            .map(|h| {
                let key = EnvoyBuffer {
                    ptr: h.key_ptr,
                    length: h.key_length,
                };
                let value = EnvoyBuffer {
                    ptr: h.value_ptr,
                    length: h.value_length,
                };
                // SAFETY: Envoy's views, valid until this hook returns; copied now.
                unsafe { (key.to_string_lossy(), value.to_string_lossy()) }
            })
            .collect()
    }

    fn header_values(&mut self, dir: Direction, name: &str) -> Vec<String> {
        let kind = header_type(dir);
        let key = ModuleBuffer::of(name.as_bytes());
        let mut values = Vec::new();
        let mut count = 0usize;
        let mut index = 0usize;
        loop {
            let mut value = EnvoyBuffer::EMPTY;
            // SAFETY: a live filter pointer; the out-pointers are to locals.
            let found = unsafe {
                abi::envoy_dynamic_module_callback_http_get_header(
                    self.filter,
                    kind,
                    key,
                    &mut value,
                    index,
                    &mut count,
                )
            };
            if !found || value.ptr.is_null() {
                break;
            }
            // SAFETY: Envoy's view, copied now.
            values.push(unsafe { value.to_string_lossy() });
            index += 1;
            if index >= count {
                break;
            }
        }
        values
    }

    fn set_header(&mut self, dir: Direction, name: &str, value: &str) {
        // SAFETY: a live filter pointer; our buffers outlive the call.
        let done = unsafe {
            abi::envoy_dynamic_module_callback_http_set_header(
                self.filter,
                header_type(dir),
                ModuleBuffer::of(name.as_bytes()),
                ModuleBuffer::of(value.as_bytes()),
            )
        };
        self.report("set", name, done);
    }

    fn add_header(&mut self, dir: Direction, name: &str, value: &str) {
        // SAFETY: as above.
        let done = unsafe {
            abi::envoy_dynamic_module_callback_http_add_header(
                self.filter,
                header_type(dir),
                ModuleBuffer::of(name.as_bytes()),
                ModuleBuffer::of(value.as_bytes()),
            )
        };
        self.report("add", name, done);
    }

    fn remove_header(&mut self, dir: Direction, name: &str) {
        // SAFETY: as above; a null value removes the header.
        let done = unsafe {
            abi::envoy_dynamic_module_callback_http_set_header(
                self.filter,
                header_type(dir),
                ModuleBuffer::of(name.as_bytes()),
                ModuleBuffer::NULL,
            )
        };
        self.report("remove", name, done);
    }

    fn attribute(&mut self, attribute: Attribute) -> Option<String> {
        let id = match attribute {
            Attribute::RouteName => abi::ATTRIBUTE_XDS_ROUTE_NAME,
            Attribute::SourceAddress => abi::ATTRIBUTE_SOURCE_ADDRESS,
            Attribute::RequestId => abi::ATTRIBUTE_REQUEST_ID,
        };
        let mut value = EnvoyBuffer::EMPTY;
        // SAFETY: a live filter pointer; the out-pointer is to a local.
        let found = unsafe {
            abi::envoy_dynamic_module_callback_http_filter_get_attribute_string(
                self.filter,
                id,
                &mut value,
            )
        };
        // SAFETY: Envoy's view, copied now.
        found.then(|| unsafe { value.to_string_lossy() })
    }

    fn clear_route_cache(&mut self) {
        // SAFETY: a live filter pointer.
        unsafe { abi::envoy_dynamic_module_callback_http_clear_route_cache(self.filter) }
    }
}
