//! Shard lineage: a resharded stream's shards read parents first, so records stay in order
//! per partition key.

use std::collections::HashMap;

/// Shard ids ordered so that every parent comes before its children (Kinesis API, UpdateShardCount: <https://docs.aws.amazon.com/kinesis/latest/APIReference/API_UpdateShardCount.html>).
pub(crate) fn parents_first(shards: &[(String, Option<String>)]) -> Vec<String> {
    let known: HashMap<&str, Option<&str>> = shards
        .iter()
        .map(|(id, parent)| (id.as_str(), parent.as_deref()))
        .collect();
    let depth = |start: &str| -> usize {
        let mut id = start.to_owned();
        let mut d = 0;
        while let Some(Some(parent)) = known.get(id.as_str()) {
            if !known.contains_key(parent) || d > shards.len() {
                break;
            }
            d += 1;
            id = (*parent).to_owned();
        }
        d
    };
    let mut ordered: Vec<(usize, &str)> = shards
        .iter()
        .map(|(id, _)| (depth(id), id.as_str()))
        .collect();
    ordered.sort();
    ordered.into_iter().map(|(_, id)| id.to_owned()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parents_are_read_before_their_children() {
        let shards = vec![
            (
                "shardId-000000000003".to_owned(),
                Some("shardId-000000000001".to_owned()),
            ),
            (
                "shardId-000000000002".to_owned(),
                Some("shardId-000000000001".to_owned()),
            ),
            ("shardId-000000000001".to_owned(), None),
            ("shardId-000000000000".to_owned(), None),
            // A parent that expired from the stream does not hold its child back.
            (
                "shardId-000000000009".to_owned(),
                Some("shardId-gone".to_owned()),
            ),
        ];
        assert_eq!(
            parents_first(&shards),
            [
                "shardId-000000000000",
                "shardId-000000000001",
                "shardId-000000000009",
                "shardId-000000000002",
                "shardId-000000000003"
            ]
        );
    }
}
