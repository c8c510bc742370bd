//! The controller's YAML loader on arbitrary text, as one file of a config
//! directory: every document ends as an object, a skipped kind or a problem
//! naming the file (an object refused, or a document left out), never a panic. Time and memory must stay bounded whatever
//! the text holds (aliases expanding, deep nesting, many documents): libFuzzer
//! reports a unit slower than `-timeout` or bigger than `-rss_limit_mb`
//! (scripts/fuzz.sh) like a crash.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_resources::loader::load_str;
use tollgate_resources::Resources;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut resources = Resources::default();
    if let Err(e) = load_str("fuzz.yaml", &text, &mut resources) {
        for problem in &e.problems {
            assert!(problem.starts_with("fuzz.yaml:"), "{problem}");
        }
    }
    for problem in resources.problems() {
        assert!(problem.starts_with("fuzz.yaml:"), "{problem}");
    }
});
