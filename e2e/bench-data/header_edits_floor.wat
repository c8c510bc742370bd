;; The cheapest proxy-wasm module that makes the header benchmark's edits: no
;; allocator, no SDK dispatcher, no per-request state, only the three callbacks
;; Envoy must call (context create, request headers, response headers) and one
;; host call per edit. The benchmark runs it as the floor of what *any*
;; proxy-wasm filter costs in this Envoy; it is not a product.
(module
  (import "env" "proxy_replace_header_map_value" (func $set (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_add_header_map_value" (func $add (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_remove_header_map_value" (func $remove (param i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "x-remove")     ;; 8
  (data (i32.const 32) "x-set")        ;; 5
  (data (i32.const 48) "set-value")    ;; 9
  (data (i32.const 64) "x-add")        ;; 5
  (data (i32.const 80) "add-value")    ;; 9
  (data (i32.const 96) "x-resp-set")   ;; 10
  (data (i32.const 112) "x-resp-add")  ;; 10
  (global $heap (mut i32) (i32.const 1024))
  ;; Envoy allocates through this when it hands the module data (never per request here).
  (func (export "proxy_on_memory_allocate") (param $size i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (global.get $heap) (i32.and (i32.add (local.get $size) (i32.const 15)) (i32.const -16))))
    (local.get $p))
  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_configure") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_request_headers") (param i32 i32 i32) (result i32)
    (drop (call $remove (i32.const 0) (i32.const 16) (i32.const 8)))
    (drop (call $set (i32.const 0) (i32.const 32) (i32.const 5) (i32.const 48) (i32.const 9)))
    (drop (call $add (i32.const 0) (i32.const 64) (i32.const 5) (i32.const 80) (i32.const 9)))
    (i32.const 0))
  (func (export "proxy_on_response_headers") (param i32 i32 i32) (result i32)
    (drop (call $set (i32.const 2) (i32.const 96) (i32.const 10) (i32.const 48) (i32.const 9)))
    (drop (call $add (i32.const 2) (i32.const 112) (i32.const 10) (i32.const 80) (i32.const 9)))
    (i32.const 0))
)
