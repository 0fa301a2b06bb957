//! S3 object names as Firehose makes them (Amazon Data Firehose, Custom prefixes for Amazon S3 objects: <https://docs.aws.amazon.com/firehose/latest/dev/s3-prefixes.html>): the evaluated prefix, then
//! `<delivery>-<version>-<yyyy-MM-dd-HH-mm-ss>-<uuid><extension>`.

use crate::spec::{Compression, DatePart, Prefix, PrefixPart, S3Spec};
use chrono::{DateTime, Datelike, NaiveDateTime, Timelike, Utc};

/// The default prefix Firehose uses: `yyyy/MM/dd/HH/` (Amazon Data Firehose, Custom prefixes for Amazon S3 objects: <https://docs.aws.amazon.com/firehose/latest/dev/s3-prefixes.html>).
const DEFAULT_TIME_PARTS: &[DatePart] = &[
    DatePart::Field {
        letter: 'y',
        width: 4,
    },
    DatePart::Literal("/"),
    DatePart::Field {
        letter: 'M',
        width: 2,
    },
    DatePart::Literal("/"),
    DatePart::Field {
        letter: 'd',
        width: 2,
    },
    DatePart::Literal("/"),
    DatePart::Field {
        letter: 'H',
        width: 2,
    },
    DatePart::Literal("/"),
];

/// Random parts of names: v4 UUIDs, or a seeded sequence for reproducible tests.
#[derive(Debug)]
pub(crate) enum Ids {
    Random,
    Seeded(u64),
}

impl Ids {
    fn next_u64(&mut self) -> u64 {
        match self {
            Ids::Random => {
                let u = uuid::Uuid::new_v4();
                u.as_u64_pair().0
            }
            // splitmix64
            Ids::Seeded(state) => {
                *state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
                let mut z = *state;
                z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
                z ^ (z >> 31)
            }
        }
    }

    pub(crate) fn uuid(&mut self) -> String {
        match self {
            Ids::Random => uuid::Uuid::new_v4().to_string(),
            Ids::Seeded(_) => {
                let (a, b) = (self.next_u64(), self.next_u64());
                uuid::Builder::from_random_bytes(
                    ((u128::from(a) << 64) | u128::from(b)).to_be_bytes(),
                )
                .into_uuid()
                .to_string()
            }
        }
    }

    /// `!{firehose:random-string}`: 11 characters (Amazon Data Firehose, Custom prefixes for Amazon S3 objects: <https://docs.aws.amazon.com/firehose/latest/dev/s3-prefixes.html>).
    pub(crate) fn random_string(&mut self) -> String {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        (0..11)
            .map(|_| ALPHABET[(self.next_u64() % ALPHABET.len() as u64) as usize] as char)
            .collect()
    }
}

/// The local time of `ms` in the destination's time zone (UTC by default).
pub(crate) fn local_time(ms: i64, tz: Option<chrono_tz::Tz>) -> NaiveDateTime {
    let utc = DateTime::<Utc>::from_timestamp_millis(ms).unwrap_or_default();
    match tz {
        Some(tz) => utc.with_timezone(&tz).naive_local(),
        None => utc.naive_utc(),
    }
}

fn pad(out: &mut String, value: i64, width: usize) {
    use std::fmt::Write;
    let _ = write!(out, "{value:0width$}");
}

/// Formats a tokenised `DateTimeFormatter` pattern.
pub(crate) fn format_time(parts: &[DatePart], t: &NaiveDateTime, out: &mut String) {
    for part in parts {
        match *part {
            DatePart::Literal(s) => out.push_str(s),
            DatePart::Field { letter, width } => {
                let w = width as usize;
                match letter {
                    'y' | 'u' if w == 2 => pad(out, i64::from(t.year().rem_euclid(100)), 2),
                    'y' | 'u' => pad(out, i64::from(t.year()), w),
                    'M' => pad(out, i64::from(t.month()), w),
                    'd' => pad(out, i64::from(t.day()), w),
                    'D' => pad(out, i64::from(t.ordinal()), w),
                    'H' => pad(out, i64::from(t.hour()), w),
                    'm' => pad(out, i64::from(t.minute()), w),
                    's' => pad(out, i64::from(t.second()), w),
                    'S' => {
                        let nanos = format!("{:09}", t.nanosecond() % 1_000_000_000);
                        out.push_str(&nanos[..w.min(9)]);
                        for _ in 9..w {
                            out.push('0');
                        }
                    }
                    // The compiler accepts only the letters above.
                    other => out.push(other),
                }
            }
        }
    }
}

/// What an evaluated prefix needs besides the prefix itself.
pub(crate) struct PrefixContext<'a> {
    pub(crate) time: &'a NaiveDateTime,
    pub(crate) keys: &'a [(&'static str, String)],
    pub(crate) error_type: Option<&'a str>,
}

/// Evaluates a prefix; all timestamp expressions use the same instant (Amazon Data Firehose, Custom prefixes for Amazon S3 objects: <https://docs.aws.amazon.com/firehose/latest/dev/s3-prefixes.html>).
pub(crate) fn evaluate(prefix: &Prefix, cx: &PrefixContext<'_>, ids: &mut Ids) -> String {
    let mut out = String::new();
    for part in prefix.parts {
        match part {
            PrefixPart::Literal(s) => out.push_str(s),
            PrefixPart::Timestamp(d) => format_time(d, cx.time, &mut out),
            PrefixPart::RandomString => out.push_str(&ids.random_string()),
            PrefixPart::ErrorOutputType => out.push_str(cx.error_type.unwrap_or_default()),
            PrefixPart::KeyFromQuery(k) | PrefixPart::KeyFromLambda(k) => {
                if let Some((_, v)) = cx.keys.iter().find(|(name, _)| name == k) {
                    out.push_str(v);
                }
            }
        }
    }
    out
}

/// The prefix of a delivered object. Without a prefix Firehose uses `yyyy/MM/dd/HH/`; a prefix
/// with no timestamp and no partition keys gets it appended (Amazon Data Firehose, Custom prefixes for Amazon S3 objects: <https://docs.aws.amazon.com/firehose/latest/dev/s3-prefixes.html>).
pub(crate) fn object_prefix(s3: &S3Spec, cx: &PrefixContext<'_>, ids: &mut Ids) -> String {
    match &s3.prefix {
        None => {
            let mut out = String::new();
            format_time(DEFAULT_TIME_PARTS, cx.time, &mut out);
            out
        }
        Some(p) => {
            let mut out = evaluate(p, cx, ids);
            let has_time_or_keys = p.parts.iter().any(|part| {
                matches!(
                    part,
                    PrefixPart::Timestamp(_)
                        | PrefixPart::KeyFromQuery(_)
                        | PrefixPart::KeyFromLambda(_)
                )
            });
            if !has_time_or_keys {
                format_time(DEFAULT_TIME_PARTS, cx.time, &mut out);
            }
            out
        }
    }
}

/// The prefix of an error object. Without an error prefix Firehose writes to
/// `<prefix><error-output-type>/yyyy/MM/dd/HH/` (Amazon Data Firehose, Custom prefixes for Amazon S3 objects: <https://docs.aws.amazon.com/firehose/latest/dev/s3-prefixes.html>).
pub(crate) fn error_prefix(s3: &S3Spec, cx: &PrefixContext<'_>, ids: &mut Ids) -> String {
    match &s3.error_prefix {
        Some(p) => evaluate(p, cx, ids),
        None => {
            let mut out = String::new();
            if let Some(p) = &s3.prefix {
                out.push_str(&evaluate(p, cx, ids));
            }
            out.push_str(cx.error_type.unwrap_or_default());
            out.push('/');
            format_time(DEFAULT_TIME_PARTS, cx.time, &mut out);
            out
        }
    }
}

/// The extension Firehose gives a compression, unless `file_extension` overrides it.
pub(crate) fn extension(s3: &S3Spec) -> &'static str {
    if let Some(ext) = s3.file_extension {
        return ext;
    }
    if let Some(c) = &s3.conversion {
        return c.format.extension();
    }
    match s3.compression {
        Compression::None => "",
        Compression::Gzip => ".gz",
        Compression::Zip => ".zip",
        Compression::Snappy => ".snappy",
        Compression::HadoopSnappy => ".hsnappy",
    }
}

/// `<delivery>-<version>-<yyyy-MM-dd-HH-mm-ss>-<uuid><ext>` (Amazon Data Firehose, Custom prefixes for Amazon S3 objects: <https://docs.aws.amazon.com/firehose/latest/dev/s3-prefixes.html>).
pub(crate) fn object_name(
    delivery: &str,
    version: u32,
    time: &NaiveDateTime,
    uuid: &str,
    ext: &str,
) -> String {
    format!(
        "{delivery}-{version}-{}-{uuid}{ext}",
        time.format("%Y-%m-%d-%H-%M-%S")
    )
}

/// S3 object keys are at most 1,024 bytes of UTF-8 ("Naming Amazon S3 objects",
/// <https://docs.aws.amazon.com/AmazonS3/latest/userguide/object-keys.html>).
pub(crate) const MAX_KEY_BYTES: usize = 1024;

/// The longest file or folder name common local file systems hold (ext4, APFS, NTFS: 255).
const MAX_SEGMENT_BYTES: usize = 255;

/// Whether an object key can be stored as it is, or why not.
///
/// Firehose writes partition key values into the key as they are, UTF-8, with no
/// percent-encoding ("Use Amazon S3 bucket prefix to deliver data",
/// <https://docs.aws.amazon.com/firehose/latest/dev/dynamic-partitioning-s3bucketprefix.html>),
/// and a `/` in a value starts a new folder level. AWS does not document what Firehose does
/// with a value that leaves an empty folder name or one named `.` or `..`; kpipe refuses
/// those (they cannot be stored without changing the key, and `..` would leave the output
/// folder), and keys longer than S3 allows; on a local file system, also a folder or file
/// name longer than 255 bytes. docs/engine.md says so.
pub(crate) fn check_key(key: &str, filesystem: bool) -> Result<(), String> {
    if key.len() > MAX_KEY_BYTES {
        return Err(format!(
            "the object key is {} bytes, more than the {MAX_KEY_BYTES} bytes S3 allows \
             (https://docs.aws.amazon.com/AmazonS3/latest/userguide/object-keys.html)",
            key.len()
        ));
    }
    for segment in key.split('/') {
        let why = match segment {
            "" => Some("an empty folder name"),
            "." | ".." => Some("a folder named `.` or `..`"),
            s if s.chars().any(|c| c.is_ascii_control()) => Some("a control character"),
            s if filesystem && s.len() > MAX_SEGMENT_BYTES => {
                Some("a folder name longer than the 255 bytes a local file system holds")
            }
            _ => None,
        };
        if let Some(why) = why {
            return Err(format!(
                "the object key {key:?} would have {why}; kpipe does not store such keys"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: i64) -> NaiveDateTime {
        local_time(ms, None)
    }

    #[test]
    fn formats_java_patterns() {
        // 2026-11-27T08:05:09.123Z
        let time = t(1_795_766_709_123);
        let mut out = String::new();
        format_time(
            &[
                DatePart::Field {
                    letter: 'y',
                    width: 4,
                },
                DatePart::Literal("-"),
                DatePart::Field {
                    letter: 'y',
                    width: 2,
                },
                DatePart::Literal("/"),
                DatePart::Field {
                    letter: 'M',
                    width: 1,
                },
                DatePart::Literal("/"),
                DatePart::Field {
                    letter: 'D',
                    width: 3,
                },
                DatePart::Literal("T"),
                DatePart::Field {
                    letter: 'H',
                    width: 2,
                },
                DatePart::Field {
                    letter: 'm',
                    width: 2,
                },
                DatePart::Field {
                    letter: 's',
                    width: 2,
                },
                DatePart::Literal("."),
                DatePart::Field {
                    letter: 'S',
                    width: 3,
                },
            ],
            &time,
            &mut out,
        );
        assert_eq!(out, "2026-26/11/331T080509.123");
    }

    #[test]
    fn time_zones_shift_the_local_time() {
        let tz: chrono_tz::Tz = "Asia/Tokyo".parse().unwrap();
        assert_eq!(local_time(0, Some(tz)).format("%H").to_string(), "09");
    }

    #[test]
    fn keys_are_checked_as_they_will_be_stored() {
        assert!(check_key("b/customer=é#~%41/x.gz", true).is_ok());
        assert!(check_key("b/a/b/x.gz", true).is_ok());
        for bad in ["b//x.gz", "b/../x.gz", "b/./x", "b/a\u{7}/x", "/x"] {
            assert!(check_key(bad, false).is_err(), "{bad}");
        }
        let long = format!("b/{}/x", "k".repeat(300));
        assert!(check_key(&long, false).is_ok());
        assert!(check_key(&long, true).unwrap_err().contains("255 bytes"));
        let huge = format!("b/{}/x", "k/".repeat(600));
        assert!(
            check_key(&huge, false)
                .unwrap_err()
                .contains("1024 bytes S3 allows")
        );
    }

    #[test]
    fn seeded_ids_repeat() {
        let (mut a, mut b) = (Ids::Seeded(7), Ids::Seeded(7));
        assert_eq!(a.uuid(), b.uuid());
        assert_eq!(a.random_string().len(), 11);
        assert_eq!(
            object_name("sensor-lake", 1, &t(0), "u", ".gz"),
            "sensor-lake-1-1970-01-01-00-00-00-u.gz"
        );
    }
}
