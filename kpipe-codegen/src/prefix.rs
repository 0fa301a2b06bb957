//! The S3 prefix expression language of Firehose (Amazon Data Firehose, Custom prefixes for Amazon S3 objects: <https://docs.aws.amazon.com/firehose/latest/dev/s3-prefixes.html>):
//! literal text with `!{namespace:value}` expressions.
//!
//! ```text
//! raw/site=!{partitionKeyFromLambda:site}/!{timestamp:yyyy/MM/dd/HH}/
//! errors/!{firehose:error-output-type}/!{timestamp:yyyy/MM/dd}/
//! ```
//!
//! Parsing is pure: it returns the parts and a list of problems; the rules that depend on
//! where the prefix is used (error prefix or not, declared keys) live in `validate.rs`.

/// One piece of a prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Part {
    Literal(String),
    /// `!{timestamp:PATTERN}` with the pattern already tokenised.
    Timestamp(Vec<DatePart>),
    /// `!{firehose:random-string}`: 11 random characters, new per occurrence.
    RandomString,
    /// `!{firehose:error-output-type}`: only in the error prefix.
    ErrorOutputType,
    /// `!{partitionKeyFromQuery:key}`
    KeyFromQuery(String),
    /// `!{partitionKeyFromLambda:key}`
    KeyFromLambda(String),
}

/// One token of a `DateTimeFormatter` pattern (the subset kpipe supports).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum DatePart {
    Literal(String),
    /// A pattern letter (`y`, `M`, `d`, `D`, `H`, `m`, `s`, `S`) repeated `width` times.
    Field(char, u8),
}

/// A parsed prefix.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Prefix {
    pub(crate) raw: String,
    pub(crate) parts: Vec<Part>,
}

/// The supported pattern letters and what they mean, for messages.
pub(crate) const DATE_LETTERS: &str = "y (year), M (month), d (day), D (day of year), H (hour 0-23), m (minute), s (second), S (fraction)";

/// The longest `!{firehose:error-output-type}` value (Amazon Data Firehose, Custom prefixes for Amazon S3 objects: <https://docs.aws.amazon.com/firehose/latest/dev/s3-prefixes.html>), for the
/// 512-character bound on an evaluated prefix.
const LONGEST_ERROR_OUTPUT_TYPE: usize = "AmazonOpenSearchService-failed".len();

/// The length of `!{firehose:random-string}` once evaluated (Amazon Data Firehose, Custom prefixes for Amazon S3 objects: <https://docs.aws.amazon.com/firehose/latest/dev/s3-prefixes.html>).
const RANDOM_STRING_LEN: usize = 11;

impl Prefix {
    /// Parses `raw`; problems are returned as messages (the caller knows the span).
    pub(crate) fn parse(raw: &str) -> (Prefix, Vec<String>) {
        let mut parts = Vec::new();
        let mut errors = Vec::new();
        let mut literal = String::new();
        let mut rest = raw;
        while let Some(pos) = rest.find("!{") {
            literal.push_str(&rest[..pos]);
            let after = &rest[pos + 2..];
            let Some(end) = after.find('}') else {
                errors.push(format!(
                    "unterminated expression `{}` in prefix: expected `}}`",
                    &rest[pos..]
                ));
                rest = "";
                break;
            };
            if !literal.is_empty() {
                parts.push(Part::Literal(std::mem::take(&mut literal)));
            }
            let expr = &after[..end];
            match expression(expr) {
                Ok(part) => parts.push(part),
                Err(msg) => errors.push(msg),
            }
            rest = &after[end + 1..];
        }
        literal.push_str(rest);
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        (
            Prefix {
                raw: raw.to_owned(),
                parts,
            },
            errors,
        )
    }

    /// True when the prefix uses any `!{...}` expression.
    pub(crate) fn has_expressions(&self) -> bool {
        self.parts.iter().any(|p| !matches!(p, Part::Literal(_)))
    }

    /// The shortest length the prefix can evaluate to, counting each partition key as one
    /// character and the error output type at its longest.
    pub(crate) fn min_evaluated_len(&self) -> usize {
        self.parts
            .iter()
            .map(|p| match p {
                Part::Literal(s) => s.chars().count(),
                Part::Timestamp(d) => d
                    .iter()
                    .map(|d| match d {
                        DatePart::Literal(s) => s.chars().count(),
                        DatePart::Field(c, w) => date_field_len(*c, *w as usize),
                    })
                    .sum(),
                Part::RandomString => RANDOM_STRING_LEN,
                Part::ErrorOutputType => LONGEST_ERROR_OUTPUT_TYPE,
                Part::KeyFromQuery(_) | Part::KeyFromLambda(_) => 1,
            })
            .sum()
    }
}

fn date_field_len(letter: char, width: usize) -> usize {
    match letter {
        'y' | 'u' if width == 2 => 2,
        'y' | 'u' => width.max(4),
        'D' => width.max(3),
        'S' => width,
        _ => width.max(2),
    }
}

fn expression(expr: &str) -> Result<Part, String> {
    let Some((ns, value)) = expr.split_once(':') else {
        return Err(format!(
            "expression `!{{{expr}}}` has no namespace: expected `!{{namespace:value}}` with one of `timestamp`, `firehose`, `partitionKeyFromQuery`, `partitionKeyFromLambda`"
        ));
    };
    match ns {
        "timestamp" => date_pattern(value).map(Part::Timestamp),
        "firehose" => match value {
            "random-string" => Ok(Part::RandomString),
            "error-output-type" => Ok(Part::ErrorOutputType),
            other => Err(format!(
                "unknown `firehose` expression `{other}`: expected `random-string` or `error-output-type`"
            )),
        },
        "partitionKeyFromQuery" | "partitionKeyFromLambda" => {
            if value.is_empty() {
                return Err(format!("`!{{{ns}:}}` needs a key name"));
            }
            Ok(if ns == "partitionKeyFromQuery" {
                Part::KeyFromQuery(value.to_owned())
            } else {
                Part::KeyFromLambda(value.to_owned())
            })
        }
        other => {
            let known = [
                "timestamp",
                "firehose",
                "partitionKeyFromQuery",
                "partitionKeyFromLambda",
            ];
            let mut msg = format!(
                "unknown prefix namespace `{other}`: expected one of `timestamp`, `firehose`, `partitionKeyFromQuery`, `partitionKeyFromLambda`"
            );
            if let Some(k) = crate::diagnostic::did_you_mean(other, known) {
                msg.push_str(&format!("\n\n= help: did you mean `{k}`?"));
            }
            Err(msg)
        }
    }
}

/// Tokenises a `DateTimeFormatter` pattern (the subset Firehose users rely on).
pub(crate) fn date_pattern(pattern: &str) -> Result<Vec<DatePart>, String> {
    if pattern.is_empty() {
        return Err("`!{timestamp:}` needs a pattern, like `!{timestamp:yyyy/MM/dd}`".into());
    }
    let mut out: Vec<DatePart> = Vec::new();
    let push_lit = |out: &mut Vec<DatePart>, s: &str| match out.last_mut() {
        Some(DatePart::Literal(l)) => l.push_str(s),
        _ => out.push(DatePart::Literal(s.to_owned())),
    };
    let chars: Vec<char> = pattern.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c == '\'' {
            // 'text' is literal; '' is a single quote.
            if chars.get(i + 1) == Some(&'\'') {
                push_lit(&mut out, "'");
                i += 2;
                continue;
            }
            let Some(len) = chars[i + 1..].iter().position(|&q| q == '\'') else {
                return Err(format!(
                    "unterminated quote in timestamp pattern `{pattern}`"
                ));
            };
            let text: String = chars[i + 1..i + 1 + len].iter().collect();
            push_lit(&mut out, &text);
            i += len + 2;
            continue;
        }
        if c.is_ascii_alphabetic() {
            let mut width = 1;
            while chars.get(i + width) == Some(&c) {
                width += 1;
            }
            let ok = match c {
                'y' | 'u' => width <= 4,
                'M' | 'd' | 'H' | 'm' | 's' => width <= 2,
                'D' => width <= 3,
                'S' => width <= 9,
                _ => {
                    return Err(format!(
                        "unsupported letter `{c}` in timestamp pattern `{pattern}`\n\n= note: kpipe supports {DATE_LETTERS}; quote literal text as in `'T'`"
                    ));
                }
            };
            if !ok {
                let hint = if c == 'M' {
                    "; month names (`MMM`) are not supported"
                } else {
                    ""
                };
                return Err(format!(
                    "`{}` is too wide for `{c}` in timestamp pattern `{pattern}`{hint}",
                    c.to_string().repeat(width)
                ));
            }
            out.push(DatePart::Field(c, width as u8));
            i += width;
            continue;
        }
        if matches!(c, '[' | ']' | '#' | '{' | '}') {
            return Err(format!(
                "reserved character `{c}` in timestamp pattern `{pattern}`: quote it as `'{c}'`"
            ));
        }
        push_lit(&mut out, &c.to_string());
        i += 1;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_design_prefix() {
        let (p, errs) =
            Prefix::parse("raw/site=!{partitionKeyFromLambda:site}/!{timestamp:yyyy/MM/dd/HH}/");
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(
            p.parts,
            vec![
                Part::Literal("raw/site=".into()),
                Part::KeyFromLambda("site".into()),
                Part::Literal("/".into()),
                Part::Timestamp(vec![
                    DatePart::Field('y', 4),
                    DatePart::Literal("/".into()),
                    DatePart::Field('M', 2),
                    DatePart::Literal("/".into()),
                    DatePart::Field('d', 2),
                    DatePart::Literal("/".into()),
                    DatePart::Field('H', 2),
                ]),
                Part::Literal("/".into()),
            ]
        );
        assert!(p.has_expressions());
        // "raw/site=" 9 + key 1 + "/" 1 + "yyyy/MM/dd/HH" 13 + "/" 1
        assert_eq!(p.min_evaluated_len(), 25);
    }

    #[test]
    fn reports_bad_expressions() {
        let (_, e) = Prefix::parse("a/!{timestmp:yyyy}/");
        assert!(e[0].contains("did you mean `timestamp`"), "{e:?}");
        let (_, e) = Prefix::parse("a/!{timestamp:yyyy/MMM}");
        assert!(e[0].contains("month names"), "{e:?}");
        let (_, e) = Prefix::parse("a/!{timestamp:yyyy-QQ}");
        assert!(e[0].contains("unsupported letter `Q`"), "{e:?}");
        let (_, e) = Prefix::parse("a/!{firehose:error-output-type");
        assert!(e[0].contains("unterminated"), "{e:?}");
        let (_, e) = Prefix::parse("!{site}");
        assert!(e[0].contains("no namespace"), "{e:?}");
    }

    #[test]
    fn quoted_text_is_literal() {
        assert_eq!(
            date_pattern("yyyy'T'HH''").unwrap(),
            vec![
                DatePart::Field('y', 4),
                DatePart::Literal("T".into()),
                DatePart::Field('H', 2),
                DatePart::Literal("'".into()),
            ]
        );
    }
}
