//! Consumers: sync and async functions, `()` and `Result` returns, every setting.

use kpipe_runtime::Pipeline;
use kpipe_tests::Reading;

fn log(_r: Reading) {}

async fn forward(_r: Reading) -> Result<(), std::io::Error> {
    Ok(())
}

kpipe_runtime::pipeline! {
    pipeline P {
        stream readings: Reading { capacity: on_demand, partition_key: sensor_id }
        /// Logs every reading.
        consumer logger: readings -> log { starting_position: latest }
        consumer forwarder: readings -> crate::forward {
            batch_size: 10000,
            starting_position: trim_horizon,
            bisect_on_error: true,
            maximum_retries: unlimited,
            batch_window: 5min,
            parallelization: 10,
            lambda: { memory: 1GiB, timeout: 15min, architecture: arm64 },
        }
    }
}

fn main() {
    let f = P::spec().consumer("forwarder").unwrap();
    assert_eq!((f.batch_size, f.maximum_retries, f.batch_window_secs), (10000, None, 300));
    assert_eq!((f.lambda.memory_mib, f.lambda.timeout_secs), (1024, 900));
    assert_eq!(P::logger().spec().id, "logger");
    assert_eq!(P::consumers().len(), 2);
}
