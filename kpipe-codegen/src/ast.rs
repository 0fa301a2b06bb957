//! Surface syntax, one to one with what the user typed. Every node keeps its tokens so
//! later phases can point at them.

use proc_macro2::{Ident, TokenStream};
use syn::{Attribute, Type, Visibility};

/// The whole input of one macro call or one `.kpipe` file.
#[derive(Debug)]
pub(crate) struct FileAst {
    pub(crate) pipelines: Vec<PipelineAst>,
}

/// `#[doc] pub pipeline Name { settings and stages }`
#[derive(Debug)]
pub(crate) struct PipelineAst {
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) vis: Visibility,
    pub(crate) name: Ident,
    /// `key: value` settings of the pipeline itself (`region`, `tags`).
    pub(crate) fields: Vec<FieldAst>,
    pub(crate) stages: Vec<StageAst>,
}

/// The kinds of stage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum StageKind {
    Stream,
    Transform,
    S3,
    Delivery,
    Consumer,
}

impl StageKind {
    pub(crate) fn keyword(self) -> &'static str {
        match self {
            StageKind::Stream => "stream",
            StageKind::Transform => "transform",
            StageKind::S3 => "s3",
            StageKind::Delivery => "delivery",
            StageKind::Consumer => "consumer",
        }
    }

    /// How the kind is named in messages ("stream `readings`").
    pub(crate) fn noun(self) -> &'static str {
        match self {
            StageKind::Stream => "stream",
            StageKind::Transform => "transform",
            StageKind::S3 => "s3 destination",
            StageKind::Delivery => "delivery",
            StageKind::Consumer => "consumer",
        }
    }

    /// The noun with its article ("a stream", "an s3 destination").
    pub(crate) fn with_article(self) -> String {
        match self {
            StageKind::S3 => format!("an {}", self.noun()),
            _ => format!("a {}", self.noun()),
        }
    }

    pub(crate) fn from_keyword(word: &str) -> Option<StageKind> {
        Some(match word {
            "stream" => StageKind::Stream,
            "transform" => StageKind::Transform,
            "s3" => StageKind::S3,
            "delivery" => StageKind::Delivery,
            "consumer" => StageKind::Consumer,
            _ => return None,
        })
    }
}

/// `stream readings: Reading { ... }`, `transform enrich: A -> B { ... }`,
/// `s3 lake: Enriched { ... }`, `delivery d: readings -> enrich -> lake;`,
/// `consumer alerts: readings -> crate::alert { ... }`
#[derive(Debug)]
pub(crate) struct StageAst {
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) name: Ident,
    /// What follows `name:`, one variant per kind of stage.
    pub(crate) sig: SigAst,
    /// The `{ ... }` block; `None` for `delivery d: a -> b;`.
    pub(crate) body: Option<Vec<FieldAst>>,
    /// The block had syntax errors (already reported): a required key may be among the
    /// settings that did not parse, so it is not also reported missing.
    pub(crate) broken: bool,
}

impl StageAst {
    /// The kind of stage, from its signature.
    pub(crate) fn kind(&self) -> StageKind {
        match self.sig {
            SigAst::Stream(_) => StageKind::Stream,
            SigAst::Transform(..) => StageKind::Transform,
            SigAst::S3(_) => StageKind::S3,
            SigAst::Delivery(_) => StageKind::Delivery,
            SigAst::Consumer(..) => StageKind::Consumer,
        }
    }
}

/// What follows `name:` in a stage: one variant per kind, so each kind's lowering gets
/// exactly its own parts.
#[derive(Debug)]
pub(crate) enum SigAst {
    /// `stream x: T`
    Stream(Box<Type>),
    /// `transform x: In -> Out`
    Transform(Box<Type>, Box<Type>),
    /// `s3 x: T`
    S3(Box<Type>),
    /// `delivery x: a -> b -> c`
    Delivery(Vec<Ident>),
    /// `consumer x: stream -> crate::function` (or an aggregate type)
    Consumer(Ident, Box<syn::ExprPath>),
}

/// `key: value` inside a block.
#[derive(Debug)]
pub(crate) struct FieldAst {
    /// The key; for a quoted key, an ident spanned at the string.
    pub(crate) key: Ident,
    /// `"cost-center": ...`: a quoted key, which only tags take (AWS tag keys may hold
    /// characters an identifier cannot).
    pub(crate) quoted: Option<syn::LitStr>,
    pub(crate) value: ValueAst,
}

impl FieldAst {
    /// The key as written (a quoted key without its quotes).
    pub(crate) fn key_text(&self) -> String {
        match &self.quoted {
            Some(q) => q.value(),
            None => self.key.to_string(),
        }
    }
}

/// A value, kept as tokens until lowering knows what the key expects.
#[derive(Debug)]
pub(crate) enum ValueAst {
    /// Tokens up to the next top-level comma (literals, `24h`, `provisioned(shards: 2)`,
    /// `1MiB or 60s`, `.site`, paths).
    Tokens(TokenStream),
    /// A closure (`|r: &Reading| r.id.clone()`), parsed as an expression so that commas
    /// inside its types do not end it.
    Closure(Box<syn::Expr>),
    /// `{ key: value, ... }` (tags, partition keys).
    Block(proc_macro2::Span, Vec<FieldAst>),
}
