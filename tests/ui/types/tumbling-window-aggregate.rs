use kpipe_tests::{Enriched, Reading};
use serde::{Deserialize, Serialize};

#[derive(Default, Serialize, Deserialize)]
struct Counts {
    n: u64,
}

impl kpipe_runtime::Aggregate for Counts {
    type Record = Enriched;
    type Error = String;

    fn add(&mut self, _r: Enriched) -> Result<(), String> {
        self.n += 1;
        Ok(())
    }

    async fn close(self, _w: kpipe_runtime::Window) -> Result<(), String> {
        Ok(())
    }
}

#[derive(Default)]
struct NotAnAggregate;

kpipe_runtime::pipeline! {
    pipeline P {
        stream readings: Reading { capacity: on_demand, partition_key: sensor_id }
        consumer wrong_record: readings -> crate::Counts {
            starting_position: latest,
            tumbling_window: 60s,
        }
        consumer not_one: readings -> crate::NotAnAggregate {
            starting_position: latest,
            tumbling_window: 60s,
        }
    }
}

fn main() {}
