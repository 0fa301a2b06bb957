//! Running user code so that a panic fails one record, quietly: the panic's message and
//! location go into the record's error document and the report, not to stderr. The default
//! panic hook would print a message (and, with `RUST_BACKTRACE`, a backtrace) for every record
//! that panics, although the engine handles it; kpipe's hook stays silent inside [`guard`] and
//! [`CatchUnwind`] and hands every other panic to the hook that was installed before.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::Once;
use std::task::{Context, Poll};

thread_local! {
    /// How many guarded calls this thread is inside.
    static GUARDED: Cell<u32> = const { Cell::new(0) };
    /// Where the last guarded panic happened.
    static LOCATION: RefCell<Option<String>> = const { RefCell::new(None) };
}

fn install_hook() {
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if GUARDED.with(Cell::get) > 0 {
                let at = info.location().map(ToString::to_string);
                LOCATION.with(|l| *l.borrow_mut() = at);
            } else {
                previous(info);
            }
        }));
    });
}

/// Runs `f`; a panic becomes `Err("message (at file:line:column)")`.
pub(crate) fn guard<R>(f: impl FnOnce() -> R) -> Result<R, String> {
    install_hook();
    GUARDED.with(|g| g.set(g.get() + 1));
    let result = catch_unwind(AssertUnwindSafe(f));
    GUARDED.with(|g| g.set(g.get() - 1));
    result.map_err(|payload| describe(&*payload))
}

fn describe(payload: &(dyn Any + Send)) -> String {
    let message = panic_message(payload);
    match LOCATION.with(|l| l.borrow_mut().take()) {
        Some(at) => format!("{message} (at {at})"),
        None => message,
    }
}

/// The text of a panic payload.
pub(crate) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a non-string panic payload".to_owned()
    }
}

/// Polls a future under [`guard`]: a panic becomes `Err(message)`.
pub(crate) struct CatchUnwind<F: ?Sized>(pub(crate) Pin<Box<F>>);

impl<F: Future + ?Sized> Future for CatchUnwind<F> {
    type Output = Result<F::Output, String>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = self.0.as_mut();
        match guard(|| inner.poll(cx)) {
            Ok(Poll::Ready(v)) => Poll::Ready(Ok(v)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(m) => Poll::Ready(Err(m)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::guard;

    #[test]
    fn a_guarded_panic_gives_its_message_and_location() {
        let err = guard(|| -> u8 { panic!("boom {}", 7) }).unwrap_err();
        assert!(err.starts_with("boom 7 (at "), "{err}");
        assert!(err.contains("guard.rs:"), "{err}");
        assert_eq!(guard(|| 5), Ok(5));
        // Nested guards: the inner one reports, the outer one sees a value.
        let outer = guard(|| guard(|| -> u8 { panic!("inner") }).unwrap_err());
        assert!(outer.unwrap().starts_with("inner (at "));
    }
}
