//! The runtime is found through `$crate`, so a renamed dependency works. (Cargo does not
//! let one crate depend on the same package twice, so the rename is done with `extern crate`,
//! which `$crate` treats the same way as `rt = { package = "kpipe-runtime" }`.)

extern crate kpipe_runtime as rt;

use kpipe_tests::Reading;

rt::pipeline! {
    pipeline Renamed {
        stream readings: Reading { capacity: provisioned(shards: 1), partition_key: sensor_id }
    }
}

fn main() {
    assert_eq!(Renamed::spec().streams[0].name, "readings");
}
