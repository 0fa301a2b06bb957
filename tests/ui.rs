//! trybuild UI tests: every diagnostic kpipe writes, and the places rustc reports the user's
//! type errors. The toolchain is pinned in rust-toolchain.toml so the `.stderr` files are
//! stable; regenerate with `TRYBUILD=overwrite cargo test -p kpipe-tests --test ui` and review
//! the diff.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("ui/**/*.rs");
    t.pass("pass/*.rs");
}
