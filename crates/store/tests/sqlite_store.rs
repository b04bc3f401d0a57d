//! Behaviour tests of [`SqliteStore`] through the [`Store`] trait: on disk and in memory,
//! persistence across reopen, concurrency, export/import, and acknowledged writes surviving a
//! `SIGKILL` of the writing process.

use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use fc_store::{Scope, SqliteStore, Store, StoreError, StoreExt, Write};

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let path = std::env::temp_dir().join(format!(
            "fc-store-test-{name}-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn scope() -> Scope {
    Scope::new("000000000000", "us-east-1")
}

fn keys(page: &fc_store::Page) -> Vec<&str> {
    page.items.iter().map(|(k, _)| k.as_str()).collect()
}

fn put(store: &dyn Store, s: &Scope, table: &str, key: &str) {
    store.put(s, table, key, key.as_bytes()).unwrap();
}

/// Runs a check against an on-disk and an in-memory store.
macro_rules! both {
    ($name:ident, $check:ident) => {
        mod $name {
            #[test]
            fn on_disk() {
                let dir = super::TempDir::new(stringify!($name));
                let store = fc_store::SqliteStore::open(dir.path()).unwrap();
                super::$check(&store);
            }
            #[test]
            fn in_memory() {
                let store = fc_store::SqliteStore::in_memory().unwrap();
                super::$check(&store);
            }
        }
    };
}

fn check_crud_and_isolation(store: &dyn Store) {
    let a = scope();
    let other_account = Scope::new("111111111111", "us-east-1");
    let other_region = Scope::new("000000000000", "eu-west-1");
    let global = Scope::global("000000000000");
    assert_eq!(store.get(&a, "t", "k").unwrap(), None);
    store.put(&a, "t", "k", b"a-t").unwrap();
    store.put(&a, "u", "k", b"a-u").unwrap();
    store.put(&other_account, "t", "k", b"acct").unwrap();
    store.put(&other_region, "t", "k", b"region").unwrap();
    store.put(&global, "t", "k", b"global").unwrap();
    assert_eq!(
        store.get(&a, "t", "k").unwrap().as_deref(),
        Some(&b"a-t"[..])
    );
    assert_eq!(
        store.get(&a, "u", "k").unwrap().as_deref(),
        Some(&b"a-u"[..])
    );
    assert_eq!(
        store.get(&other_account, "t", "k").unwrap().as_deref(),
        Some(&b"acct"[..])
    );
    assert_eq!(
        store.get(&other_region, "t", "k").unwrap().as_deref(),
        Some(&b"region"[..])
    );
    assert_eq!(
        store.get(&global, "t", "k").unwrap().as_deref(),
        Some(&b"global"[..])
    );

    // Overwrite.
    store.put(&a, "t", "k", b"v2").unwrap();
    assert_eq!(
        store.get(&a, "t", "k").unwrap().as_deref(),
        Some(&b"v2"[..])
    );
    // Empty values and unusual keys.
    store.put(&a, "t", "", b"").unwrap();
    assert_eq!(store.get(&a, "t", "").unwrap(), Some(Vec::new()));
    store.put(&a, "t", "ключ/🦀\u{0}x", &[0, 255, 1]).unwrap();
    assert_eq!(
        store.get(&a, "t", "ключ/🦀\u{0}x").unwrap(),
        Some(vec![0, 255, 1])
    );
    assert_eq!(store.get(&a, "t", "ключ/🦀").unwrap(), None);

    // Delete only touches its own scope and table.
    assert!(store.delete(&a, "t", "k").unwrap());
    assert!(!store.delete(&a, "t", "k").unwrap());
    assert_eq!(store.get(&a, "t", "k").unwrap(), None);
    assert_eq!(
        store.get(&a, "u", "k").unwrap().as_deref(),
        Some(&b"a-u"[..])
    );
    assert!(store.get(&other_account, "t", "k").unwrap().is_some());
    assert!(store.get(&other_region, "t", "k").unwrap().is_some());
}
both!(crud_and_scope_isolation, check_crud_and_isolation);

fn check_json_helpers(store: &dyn Store) {
    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct Thing {
        version: u32,
        name: String,
    }
    let s = scope();
    let thing = Thing {
        version: 1,
        name: "x".into(),
    };
    store.put_json(&s, "things", "a", &thing).unwrap();
    assert_eq!(
        store.get_json::<Thing>(&s, "things", "a").unwrap(),
        Some(thing)
    );
    let (items, more) = store
        .scan_json::<Thing>(&s, "things", "", None, 10)
        .unwrap();
    assert_eq!(items.len(), 1);
    assert!(!more);
    store.put(&s, "things", "bad", b"not json").unwrap();
    assert!(matches!(
        store.get_json::<Thing>(&s, "things", "bad"),
        Err(StoreError::Decode { .. })
    ));
}
both!(json_helpers, check_json_helpers);

fn check_scan(store: &dyn Store) {
    let s = scope();
    for k in [
        "b/2", "a/1", "b/10", "b/1", "c", "b", "b0", "a/2", "b/\u{e9}", "b/~",
    ] {
        put(store, &s, "t", k);
    }
    // Noise in other scopes and tables.
    put(store, &Scope::new("111111111111", "us-east-1"), "t", "b/3");
    put(store, &Scope::new("000000000000", "us-west-2"), "t", "b/3");
    put(store, &s, "t2", "b/3");

    let all = store.scan(&s, "t", "", None, 100).unwrap();
    assert_eq!(
        keys(&all),
        ["a/1", "a/2", "b", "b/1", "b/10", "b/2", "b/~", "b/\u{e9}", "b0", "c"]
    );
    assert!(!all.more);
    assert_eq!(all.items[0].1, b"a/1");

    let b = store.scan(&s, "t", "b/", None, 100).unwrap();
    assert_eq!(keys(&b), ["b/1", "b/10", "b/2", "b/~", "b/\u{e9}"]);
    assert!(!b.more);

    // Pagination with limit/more/after.
    let p1 = store.scan(&s, "t", "b/", None, 2).unwrap();
    assert_eq!(keys(&p1), ["b/1", "b/10"]);
    assert!(p1.more);
    let p2 = store.scan(&s, "t", "b/", Some("b/10"), 2).unwrap();
    assert_eq!(keys(&p2), ["b/2", "b/~"]);
    assert!(p2.more);
    let p3 = store.scan(&s, "t", "b/", Some("b/~"), 2).unwrap();
    assert_eq!(keys(&p3), ["b/\u{e9}"]);
    assert!(!p3.more);
    // Exactly `limit` left: no more.
    let exact = store.scan(&s, "t", "b/", Some("b/2"), 2).unwrap();
    assert_eq!(keys(&exact), ["b/~", "b/\u{e9}"]);
    assert!(!exact.more);

    // `after` need not be a stored key, and may lie outside the prefix.
    assert_eq!(
        keys(&store.scan(&s, "t", "b/", Some("b/15"), 10).unwrap()),
        ["b/2", "b/~", "b/\u{e9}"]
    );
    assert_eq!(
        keys(&store.scan(&s, "t", "b/", Some("a"), 10).unwrap()).len(),
        5
    );
    assert!(store
        .scan(&s, "t", "b/", Some("b0"), 10)
        .unwrap()
        .items
        .is_empty());
    // Limit 0 only says whether anything matches.
    let zero = store.scan(&s, "t", "b/", None, 0).unwrap();
    assert!(zero.items.is_empty() && zero.more);
    let none = store.scan(&s, "t", "zzz", None, 0).unwrap();
    assert!(none.items.is_empty() && !none.more);
    // Huge limits are fine.
    assert_eq!(
        store
            .scan(&s, "t", "", None, usize::MAX)
            .unwrap()
            .items
            .len(),
        10
    );
    // Prefix that is itself a key.
    assert_eq!(
        keys(&store.scan(&s, "t", "b", None, 100).unwrap()),
        ["b", "b/1", "b/10", "b/2", "b/~", "b/\u{e9}", "b0"]
    );
    // LIKE metacharacters are not special.
    put(store, &s, "t", "x%_y");
    put(store, &s, "t", "xay");
    assert_eq!(
        keys(&store.scan(&s, "t", "x%", None, 10).unwrap()),
        ["x%_y"]
    );
}
both!(scan_order_prefix_after_limit, check_scan);

fn check_scan_unicode_edges(store: &dyn Store) {
    let s = scope();
    let ks = [
        "p\u{7F}",
        "p\u{80}",
        "p\u{D7FF}",
        "p\u{D7FF}z",
        "p\u{E000}",
        "p\u{FFFF}",
        "p\u{10000}",
        "p\u{10FFFF}",
        "p\u{10FFFF}\u{10FFFF}",
        "q",
    ];
    for k in ks {
        put(store, &s, "t", k);
    }
    let all = store.scan(&s, "t", "p", None, 100).unwrap();
    assert_eq!(keys(&all), &ks[..9]);
    let d7 = store.scan(&s, "t", "p\u{D7FF}", None, 100).unwrap();
    assert_eq!(keys(&d7), ["p\u{D7FF}", "p\u{D7FF}z"]);
    let max = store.scan(&s, "t", "p\u{10FFFF}", None, 100).unwrap();
    assert_eq!(keys(&max), ["p\u{10FFFF}", "p\u{10FFFF}\u{10FFFF}"]);
    let rev = store.scan_rev(&s, "t", "p\u{10FFFF}", None, 100).unwrap();
    assert_eq!(keys(&rev), ["p\u{10FFFF}\u{10FFFF}", "p\u{10FFFF}"]);
    assert_eq!(store.delete_prefix(&s, "t", "p\u{10FFFF}").unwrap(), 2);
    assert_eq!(store.delete_prefix(&s, "t", "p").unwrap(), 7);
    assert_eq!(keys(&store.scan(&s, "t", "", None, 100).unwrap()), ["q"]);
}
both!(scan_unicode_edges, check_scan_unicode_edges);

fn check_scan_rev(store: &dyn Store) {
    let s = scope();
    for k in ["a", "b/1", "b/2", "b/3", "b/4", "c"] {
        put(store, &s, "t", k);
    }
    let all = store.scan_rev(&s, "t", "", None, 100).unwrap();
    assert_eq!(keys(&all), ["c", "b/4", "b/3", "b/2", "b/1", "a"]);
    assert!(!all.more);
    let p1 = store.scan_rev(&s, "t", "b/", None, 2).unwrap();
    assert_eq!(keys(&p1), ["b/4", "b/3"]);
    assert!(p1.more);
    let p2 = store.scan_rev(&s, "t", "b/", Some("b/3"), 2).unwrap();
    assert_eq!(keys(&p2), ["b/2", "b/1"]);
    assert!(!p2.more);
    // `before` beyond the prefix range, and below it.
    assert_eq!(
        keys(&store.scan_rev(&s, "t", "b/", Some("zzz"), 1).unwrap()),
        ["b/4"]
    );
    assert!(store
        .scan_rev(&s, "t", "b/", Some("b/"), 10)
        .unwrap()
        .items
        .is_empty());
    assert_eq!(
        keys(&store.scan_rev(&s, "t", "", Some("b/2"), 10).unwrap()),
        ["b/1", "a"]
    );
}
both!(scan_rev_order_before_limit, check_scan_rev);

fn check_batch(store: &dyn Store) {
    let s = scope();
    put(store, &s, "t", "gone");
    store
        .batch(vec![
            Write::Put {
                scope: s.clone(),
                table: "t".into(),
                key: "a".into(),
                value: b"1".to_vec(),
            },
            Write::Put {
                scope: Scope::global("000000000000"),
                table: "u".into(),
                key: "b".into(),
                value: b"2".to_vec(),
            },
            Write::Delete {
                scope: s.clone(),
                table: "t".into(),
                key: "gone".into(),
            },
            Write::Put {
                scope: s.clone(),
                table: "t".into(),
                key: "a".into(),
                value: b"3".to_vec(),
            },
            Write::Delete {
                scope: s.clone(),
                table: "t".into(),
                key: "never-existed".into(),
            },
        ])
        .unwrap();
    assert_eq!(store.get(&s, "t", "a").unwrap().as_deref(), Some(&b"3"[..]));
    assert_eq!(
        store
            .get(&Scope::global("000000000000"), "u", "b")
            .unwrap()
            .as_deref(),
        Some(&b"2"[..])
    );
    assert_eq!(store.get(&s, "t", "gone").unwrap(), None);
    store.batch(Vec::new()).unwrap();
}
both!(batch_applies_all_writes, check_batch);

/// Readers running alongside batches never see part of a batch.
#[test]
fn batch_is_all_or_nothing_for_concurrent_readers() {
    let dir = TempDir::new("batch-atomic");
    let store = Arc::new(SqliteStore::open(dir.path()).unwrap());
    let s = scope();
    let writer = {
        let store = Arc::clone(&store);
        let s = s.clone();
        std::thread::spawn(move || {
            for round in 0..40u32 {
                let writes = (0..10)
                    .map(|i| Write::Put {
                        scope: s.clone(),
                        table: "t".into(),
                        key: format!("k{i}"),
                        value: round.to_be_bytes().to_vec(),
                    })
                    .collect();
                store.batch(writes).unwrap();
            }
        })
    };
    let mut checks = 0;
    while !writer.is_finished() || checks == 0 {
        let page = store.scan(&s, "t", "k", None, 100).unwrap();
        if !page.items.is_empty() {
            assert_eq!(page.items.len(), 10);
            let first = &page.items[0].1;
            assert!(page.items.iter().all(|(_, v)| v == first), "torn batch");
        }
        checks += 1;
    }
    writer.join().unwrap();
}

/// A batch that fails midway leaves nothing behind.
#[test]
fn failed_batch_changes_nothing() {
    let dir = TempDir::new("batch-fail");
    let store = SqliteStore::open(dir.path()).unwrap();
    let s = scope();
    put(&store, &s, "t", "keep");
    // Make every later write of the "t" table with key "poison" fail, from outside the store.
    {
        let conn = rusqlite::Connection::open(dir.path().join("state.db")).unwrap();
        conn.execute_batch(
            "CREATE TRIGGER poison BEFORE INSERT ON records WHEN NEW.key = 'poison'
             BEGIN SELECT RAISE(ABORT, 'poisoned'); END;",
        )
        .unwrap();
    }
    let result = store.batch(vec![
        Write::Put {
            scope: s.clone(),
            table: "t".into(),
            key: "first".into(),
            value: b"1".to_vec(),
        },
        Write::Delete {
            scope: s.clone(),
            table: "t".into(),
            key: "keep".into(),
        },
        Write::Put {
            scope: s.clone(),
            table: "t".into(),
            key: "poison".into(),
            value: b"x".to_vec(),
        },
    ]);
    let err = result.unwrap_err();
    assert!(err.to_string().contains("poisoned"), "{err}");
    assert_eq!(store.get(&s, "t", "first").unwrap(), None);
    assert!(store.get(&s, "t", "keep").unwrap().is_some());
    // The store is still usable afterwards.
    put(&store, &s, "t", "after");
    assert!(store.get(&s, "t", "after").unwrap().is_some());
}

fn check_delete_prefix(store: &dyn Store) {
    let s = scope();
    let other = Scope::new("000000000000", "eu-west-1");
    for k in ["a/1", "a/2", "a/3", "a", "ab", "b"] {
        put(store, &s, "t", k);
        put(store, &s, "u", k);
        put(store, &other, "t", k);
    }
    assert_eq!(store.delete_prefix(&s, "t", "a/").unwrap(), 3);
    assert_eq!(
        keys(&store.scan(&s, "t", "", None, 100).unwrap()),
        ["a", "ab", "b"]
    );
    assert_eq!(store.scan(&s, "u", "", None, 100).unwrap().items.len(), 6);
    assert_eq!(
        store.scan(&other, "t", "", None, 100).unwrap().items.len(),
        6
    );
    assert_eq!(store.delete_prefix(&s, "t", "zzz").unwrap(), 0);
    assert_eq!(store.delete_prefix(&s, "t", "").unwrap(), 3);
    assert!(store.scan(&s, "t", "", None, 100).unwrap().items.is_empty());
    assert_eq!(store.scan(&s, "u", "", None, 100).unwrap().items.len(), 6);
}
both!(delete_prefix, check_delete_prefix);

fn check_scopes_and_reset(store: &dyn Store) {
    let scopes = [
        Scope::new("000000000000", "us-east-1"),
        Scope::new("000000000000", "eu-west-1"),
        Scope::global("000000000000"),
        Scope::new("111111111111", "us-east-1"),
        Scope::new("222222222222", "ap-south-1"),
    ];
    for (i, s) in scopes.iter().enumerate() {
        put(store, s, "other", "x");
        if i % 2 == 0 {
            put(store, s, "t", "x");
            put(store, s, "t", "y");
        }
    }
    assert!(store.scopes("none").unwrap().is_empty());
    let mut expected = vec![scopes[0].clone(), scopes[2].clone(), scopes[4].clone()];
    expected.sort();
    assert_eq!(store.scopes("t").unwrap(), expected);
    let mut all = scopes.to_vec();
    all.sort();
    assert_eq!(store.scopes("other").unwrap(), all);

    let generation = store.generation();
    put(store, &scopes[0], "t", "w");
    assert_eq!(store.generation(), generation, "writes keep the generation");
    store.reset().unwrap();
    assert_ne!(
        store.generation(),
        generation,
        "a reset changes the generation"
    );
    assert!(store.scopes("t").unwrap().is_empty());
    assert!(store.scopes("other").unwrap().is_empty());
    assert_eq!(store.get(&scopes[0], "t", "x").unwrap(), None);
    // Usable after reset.
    put(store, &scopes[1], "t", "z");
    assert_eq!(store.scopes("t").unwrap(), vec![scopes[1].clone()]);
}
both!(scopes_and_reset, check_scopes_and_reset);

fn fill_for_export(store: &dyn Store) {
    put(store, &scope(), "t", "a");
    store
        .put(&scope(), "t", "bin", &[0, 1, 2, 255, 254])
        .unwrap();
    store.put(&scope(), "t", "empty", b"").unwrap();
    put(
        store,
        &Scope::global("000000000000"),
        "users",
        "ключ \"quoted\"\n🦀",
    );
    put(store, &Scope::new("111111111111", "eu-west-1"), "t", "a");
}

fn dump(store: &dyn Store) -> Vec<(Scope, String, String, Vec<u8>)> {
    let mut out = Vec::new();
    for table in ["t", "users", "x"] {
        for s in store.scopes(table).unwrap() {
            for (k, v) in store.scan(&s, table, "", None, usize::MAX).unwrap().items {
                out.push((s.clone(), table.to_string(), k, v));
            }
        }
    }
    out
}

#[test]
fn export_import_round_trip() {
    let dir = TempDir::new("export");
    let file = dir.path().join("state.jsonl");
    let source = SqliteStore::open(&dir.path().join("a")).unwrap();
    fill_for_export(&source);
    source.export(&file).unwrap();
    let text = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], r#"{"ferrocloud_state":1}"#);
    assert_eq!(lines.len(), 7);
    assert_eq!(lines[6], r#"{"ferrocloud_state_end":5}"#);
    // No temporary files left behind.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 2, "{names:?}");

    // Import into a store with other contents replaces them; both backends.
    let target = SqliteStore::in_memory().unwrap();
    put(&target, &scope(), "x", "old");
    let generation = target.generation();
    target.import(&file).unwrap();
    assert_ne!(
        target.generation(),
        generation,
        "an import changes the generation"
    );
    assert_eq!(dump(&target), dump(&source));
    assert_eq!(target.get(&scope(), "x", "old").unwrap(), None);
    let disk = SqliteStore::open(&dir.path().join("b")).unwrap();
    disk.import(&file).unwrap();
    assert_eq!(dump(&disk), dump(&source));

    // Export over an existing file replaces it; an empty store exports and imports.
    let empty = SqliteStore::in_memory().unwrap();
    empty.export(&file).unwrap();
    disk.import(&file).unwrap();
    assert!(dump(&disk).is_empty());
}

#[test]
fn export_to_a_missing_directory_fails_cleanly() {
    let dir = TempDir::new("export-missing");
    let store = SqliteStore::in_memory().unwrap();
    let err = store
        .export(&dir.path().join("no/such/dir/state.jsonl"))
        .unwrap_err();
    assert!(matches!(err, StoreError::Io { .. }), "{err}");
}

#[test]
fn bad_import_changes_nothing() {
    let dir = TempDir::new("import-bad");
    let good = dir.path().join("good.jsonl");
    let store = SqliteStore::open(&dir.path().join("db")).unwrap();
    fill_for_export(&store);
    store.export(&good).unwrap();
    let before = dump(&store);
    let text = std::fs::read_to_string(&good).unwrap();
    let lines: Vec<&str> = text.lines().collect();

    let record = r#"{"account":"1","region":"r","table":"t","key":"k","value":"AA=="}"#;
    let cases: Vec<(&str, String)> = vec![
        ("empty", String::new()),
        ("not json", "hello\n".into()),
        (
            "wrong header",
            "{\"state\":1}\n{\"ferrocloud_state_end\":0}\n".to_string(),
        ),
        (
            "newer version",
            "{\"ferrocloud_state\":2}\n{\"ferrocloud_state_end\":0}\n".into(),
        ),
        ("truncated", lines[..lines.len() - 1].join("\n")),
        ("truncated mid-line", text[..text.len() - 30].to_string()),
        (
            "wrong count",
            format!("{}\n{record}\n{{\"ferrocloud_state_end\":2}}\n", lines[0]),
        ),
        (
            "bad base64",
            format!(
                "{}\n{}\n{{\"ferrocloud_state_end\":1}}\n",
                lines[0],
                record.replace("AA==", "!!")
            ),
        ),
        (
            "unknown field",
            format!(
                "{}\n{}\n{{\"ferrocloud_state_end\":1}}\n",
                lines[0],
                record.replace("\"key\"", "\"extra\":1,\"key\"")
            ),
        ),
        (
            "missing field",
            format!(
                "{}\n{}\n{{\"ferrocloud_state_end\":1}}\n",
                lines[0],
                record.replace("\"table\":\"t\",", "")
            ),
        ),
        (
            "duplicate",
            format!(
                "{}\n{record}\n{record}\n{{\"ferrocloud_state_end\":2}}\n",
                lines[0]
            ),
        ),
        (
            "data after end",
            format!("{}\n{{\"ferrocloud_state_end\":0}}\n{record}\n", lines[0]),
        ),
    ];
    for (name, content) in cases {
        let path = dir.path().join("bad.jsonl");
        std::fs::write(&path, content).unwrap();
        let err = store.import(&path).unwrap_err();
        assert!(
            matches!(err, StoreError::InvalidExport(_)),
            "{name}: unexpected {err}"
        );
        assert_eq!(dump(&store), before, "{name} changed the store");
    }
    // Invalid UTF-8.
    let path = dir.path().join("bad.jsonl");
    let mut bytes = format!("{}\n", lines[0]).into_bytes();
    bytes.extend_from_slice(&[0xff, 0xfe, b'\n']);
    std::fs::write(&path, bytes).unwrap();
    assert!(matches!(
        store.import(&path),
        Err(StoreError::InvalidExport(_))
    ));
    // Missing file.
    assert!(matches!(
        store.import(&dir.path().join("missing.jsonl")),
        Err(StoreError::Io { .. })
    ));
    assert_eq!(dump(&store), before);
    // The good file still imports.
    store.import(&good).unwrap();
    assert_eq!(dump(&store), before);
}

#[test]
fn data_survives_reopen() {
    let dir = TempDir::new("reopen");
    {
        let store = SqliteStore::open(dir.path()).unwrap();
        assert_eq!(store.path(), Some(dir.path().join("state.db").as_path()));
        put(&store, &scope(), "t", "a");
        put(&store, &scope(), "t", "b");
        store.delete(&scope(), "t", "b").unwrap();
    }
    assert!(dir.path().join("state.db").exists());
    let store = SqliteStore::open(dir.path()).unwrap();
    assert_eq!(
        store.get(&scope(), "t", "a").unwrap().as_deref(),
        Some(&b"a"[..])
    );
    assert_eq!(store.get(&scope(), "t", "b").unwrap(), None);
    // Two opens in turn on the same store both work.
    drop(store);
    let store = SqliteStore::open(dir.path()).unwrap();
    assert!(store.get(&scope(), "t", "a").unwrap().is_some());
}

#[test]
fn open_creates_nested_directories() {
    let dir = TempDir::new("nested");
    let nested = dir.path().join("x/y/z");
    let store = SqliteStore::open(&nested).unwrap();
    put(&store, &scope(), "t", "a");
    assert!(nested.join("state.db").exists());
}

#[test]
fn in_memory_store_writes_nothing_to_disk() {
    let store = SqliteStore::in_memory().unwrap();
    assert_eq!(store.path(), None);
    put(&store, &scope(), "t", "a");
    assert!(store.get(&scope(), "t", "a").unwrap().is_some());
    // Separate in-memory stores do not share data.
    let other = SqliteStore::in_memory().unwrap();
    assert_eq!(other.get(&scope(), "t", "a").unwrap(), None);
}

#[test]
fn newer_schema_is_refused() {
    let dir = TempDir::new("schema");
    drop(SqliteStore::open(dir.path()).unwrap());
    {
        let conn = rusqlite::Connection::open(dir.path().join("state.db")).unwrap();
        conn.execute(
            "UPDATE meta SET value = '99' WHERE key = 'schema_version'",
            [],
        )
        .unwrap();
    }
    let err = SqliteStore::open(dir.path()).unwrap_err().to_string();
    assert!(err.contains("schema version 99"), "{err}");
    assert!(err.contains("newer"), "{err}");
}

#[test]
fn schema_version_is_recorded() {
    let dir = TempDir::new("schema-v");
    drop(SqliteStore::open(dir.path()).unwrap());
    let conn = rusqlite::Connection::open(dir.path().join("state.db")).unwrap();
    let v: String = conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(v, fc_store::sqlite::SCHEMA_VERSION.to_string());
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[test]
fn garbage_database_file_is_an_error() {
    let dir = TempDir::new("garbage");
    std::fs::write(dir.path().join("state.db"), vec![b'x'; 4096]).unwrap();
    let err = SqliteStore::open(dir.path()).unwrap_err();
    assert!(matches!(err, StoreError::Backend(_)), "{err}");
    assert!(err.to_string().contains("state.db"), "{err}");
}

/// Make inserts of records matching `when` (an SQL condition on `NEW`) fail in the store of
/// `dir`, through a second connection.
fn poison(dir: &TempDir, when: &str) {
    let conn = rusqlite::Connection::open(dir.path().join("state.db")).unwrap();
    conn.execute_batch(&format!(
        "CREATE TRIGGER poison BEFORE INSERT ON records WHEN {when}
         BEGIN SELECT RAISE(ABORT, 'poisoned'); END;"
    ))
    .unwrap();
}

/// Concurrent jobs share commits; a job that fails inside a group changes nothing and does
/// not fail the others.
#[test]
fn failing_job_in_a_group_fails_alone() {
    let dir = TempDir::new("group-fail");
    let store = Arc::new(SqliteStore::open(dir.path()).unwrap());
    poison(&dir, "NEW.key = 'poison'");
    const THREADS: usize = 6;
    const ROUNDS: usize = 80;
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                let s = scope();
                for i in 0..ROUNDS {
                    let key = format!("t{t}-{i:03}");
                    let mut writes = vec![Write::Put {
                        scope: s.clone(),
                        table: "g".into(),
                        key: key.clone(),
                        value: key.clone().into_bytes(),
                    }];
                    let poisoned = t == 0;
                    if poisoned {
                        writes.push(Write::Put {
                            scope: s.clone(),
                            table: "g".into(),
                            key: "poison".into(),
                            value: b"x".to_vec(),
                        });
                    }
                    let r = store.batch(writes);
                    assert_eq!(r.is_err(), poisoned, "{key}: {r:?}");
                    if i % 2 == 0 && !poisoned {
                        assert!(store.delete(&s, "g", &key).unwrap());
                        assert!(!store.delete(&s, "g", &key).unwrap());
                        store.put(&s, "g", &key, key.as_bytes()).unwrap();
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let page = store.scan(&scope(), "g", "", None, 10_000).unwrap();
    assert_eq!(page.items.len(), (THREADS - 1) * ROUNDS);
    assert!(page
        .items
        .iter()
        .all(|(k, v)| !k.starts_with("t0-") && k.as_bytes() == v));
}

/// Asynchronous batches (`batch_then`) join the same groups as blocking ones: each is called
/// back once, after its writes are durable (visible to a reader and to a reopened store), a
/// failing one fails alone, and dropping the store commits what is still queued.
#[test]
fn asynchronous_batches_join_the_group_commit() {
    use std::sync::mpsc;
    let dir = TempDir::new("group-async");
    let store = Arc::new(SqliteStore::open(dir.path()).unwrap());
    poison(&dir, "NEW.key LIKE 'poison%'");
    const THREADS: usize = 4;
    const ROUNDS: usize = 50;
    let (tx, rx) = mpsc::channel::<(String, bool)>();
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let store = Arc::clone(&store);
            let tx = tx.clone();
            std::thread::spawn(move || {
                let s = scope();
                for i in 0..ROUNDS {
                    let key = format!("a{t}-{i:03}");
                    let poisoned = i % 7 == 3;
                    let mut writes = vec![Write::Put {
                        scope: s.clone(),
                        table: "g".into(),
                        key: key.clone(),
                        value: key.clone().into_bytes(),
                    }];
                    if poisoned {
                        writes.push(Write::Put {
                            scope: s.clone(),
                            table: "g".into(),
                            key: format!("poison{t}-{i}"),
                            value: b"x".to_vec(),
                        });
                    }
                    if t % 2 == 0 {
                        // Blocking callers in the same groups.
                        let r = store.batch(writes);
                        tx.send((key, r.is_ok())).unwrap();
                    } else {
                        let tx = tx.clone();
                        let check = Arc::clone(&store);
                        store.batch_then(
                            writes,
                            Box::new(move |r| {
                                if r.is_ok() {
                                    // Durable and visible before the call-back.
                                    let got = check.get(&scope(), "g", &key).unwrap();
                                    assert_eq!(got.as_deref(), Some(key.as_bytes()));
                                }
                                // Before the last sender goes (the store is unwrapped then).
                                drop(check);
                                tx.send((key, r.is_ok())).unwrap();
                            }),
                        );
                    }
                }
            })
        })
        .collect();
    drop(tx);
    for t in threads {
        t.join().unwrap();
    }
    let mut outcomes: Vec<(String, bool)> = rx.iter().collect();
    outcomes.sort();
    assert_eq!(outcomes.len(), THREADS * ROUNDS, "every job answered once");
    for (key, ok) in &outcomes {
        let i: usize = key.rsplit('-').next().unwrap().parse().unwrap();
        assert_eq!(*ok, i % 7 != 3, "{key}");
    }
    let page = store.scan(&scope(), "g", "", None, 10_000).unwrap();
    let want: Vec<&str> = outcomes
        .iter()
        .filter(|(_, ok)| *ok)
        .map(|(k, _)| k.as_str())
        .collect();
    assert_eq!(keys(&page), want);

    // Queued asynchronous jobs are committed before the store goes away.
    let store = Arc::try_unwrap(store).ok().unwrap();
    let (tx, rx) = mpsc::channel();
    for i in 0..20 {
        let tx = tx.clone();
        store.batch_then(
            vec![Write::Put {
                scope: scope(),
                table: "late".into(),
                key: format!("k{i:02}"),
                value: b"v".to_vec(),
            }],
            Box::new(move |r| tx.send(r.is_ok()).unwrap()),
        );
    }
    drop(store);
    drop(tx);
    assert_eq!(rx.iter().filter(|ok| *ok).count(), 20);
    let store = SqliteStore::open(dir.path()).unwrap();
    let page = store.scan(&scope(), "late", "", None, 100).unwrap();
    assert_eq!(page.items.len(), 20);

    // In memory there is no committer thread: the call-back runs before `batch_then` returns.
    let mem = SqliteStore::in_memory().unwrap();
    let (tx, rx) = mpsc::channel();
    mem.batch_then(
        vec![Write::Put {
            scope: scope(),
            table: "m".into(),
            key: "k".into(),
            value: b"v".to_vec(),
        }],
        Box::new(move |r| tx.send(r.is_ok()).unwrap()),
    );
    assert_eq!(rx.try_recv(), Ok(true));
}

#[test]
fn concurrent_writers_and_readers() {
    let dir = TempDir::new("concurrent");
    let store = Arc::new(SqliteStore::open(dir.path()).unwrap());
    const THREADS: usize = 8;
    const PER_THREAD: usize = 60;
    let threads: Vec<_> = (0..THREADS)
        .map(|t| {
            let store = Arc::clone(&store);
            std::thread::spawn(move || {
                let s = Scope::new(format!("{t:012}"), "us-east-1");
                for i in 0..PER_THREAD {
                    let key = format!("k{i:04}");
                    if i % 10 == 9 {
                        store
                            .batch(vec![Write::Put {
                                scope: s.clone(),
                                table: "t".into(),
                                key: key.clone(),
                                value: key.clone().into_bytes(),
                            }])
                            .unwrap();
                    } else {
                        store.put(&s, "t", &key, key.as_bytes()).unwrap();
                    }
                    // Read-your-writes from whichever connection serves the read.
                    assert_eq!(
                        store.get(&s, "t", &key).unwrap().as_deref(),
                        Some(key.as_bytes())
                    );
                    let page = store.scan(&s, "t", "k", None, 1000).unwrap();
                    assert_eq!(page.items.len(), i + 1);
                    // Reads of another thread's scope must simply not fail.
                    let other = Scope::new(format!("{:012}", (t + 1) % THREADS), "us-east-1");
                    store.scan_rev(&other, "t", "", None, 5).unwrap();
                    store.scopes("t").unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(store.scopes("t").unwrap().len(), THREADS);
    for t in 0..THREADS {
        let s = Scope::new(format!("{t:012}"), "us-east-1");
        let page = store.scan(&s, "t", "", None, 1000).unwrap();
        assert_eq!(page.items.len(), PER_THREAD);
    }
    drop(store);
    let store = SqliteStore::open(dir.path()).unwrap();
    assert_eq!(store.scopes("t").unwrap().len(), THREADS);
}

#[test]
fn store_is_usable_as_a_trait_object() {
    let store: Arc<dyn Store> = Arc::new(SqliteStore::in_memory().unwrap());
    put(store.as_ref(), &scope(), "t", "a");
    assert!(store
        .get_json::<serde_json::Value>(&scope(), "t", "a")
        .is_err());
}

const CRASH_DIR_ENV: &str = "FC_STORE_TEST_CRASH_WRITER_DIR";
const CRASH_ROUND_ENV: &str = "FC_STORE_TEST_CRASH_ROUND";

/// Not a test on its own: the child process of [`acknowledged_writes_survive_sigkill`]. Writes
/// forever from [`CRASH_THREADS`] threads at once (so most commits are grouped), printing each
/// key once the call that wrote it has returned.
#[test]
fn crash_writer_child() {
    let Ok(dir) = std::env::var(CRASH_DIR_ENV) else {
        return;
    };
    let round = std::env::var(CRASH_ROUND_ENV).unwrap();
    let store = Arc::new(SqliteStore::open(Path::new(&dir)).unwrap());
    let threads: Vec<_> = (0..CRASH_THREADS)
        .map(|t| {
            let store = Arc::clone(&store);
            let round = round.clone();
            std::thread::spawn(move || crash_writer_thread(&*store, &round, t))
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}

const CRASH_THREADS: usize = 4;

fn crash_writer_thread(store: &dyn Store, round: &str, thread: usize) {
    let s = scope();
    for i in 0u64.. {
        let key = format!("r{round}-t{thread}-{i:08}");
        if i % 3 == 2 {
            let second = format!("{key}-b");
            store
                .batch(vec![
                    Write::Put {
                        scope: s.clone(),
                        table: "crash".into(),
                        key: key.clone(),
                        value: key.clone().into_bytes(),
                    },
                    Write::Put {
                        scope: s.clone(),
                        table: "crash".into(),
                        key: second.clone(),
                        value: second.clone().into_bytes(),
                    },
                ])
                .unwrap();
            let mut out = std::io::stdout().lock();
            writeln!(out, "written {key}").unwrap();
            writeln!(out, "written {second}").unwrap();
            out.flush().unwrap();
        } else {
            store.put(&s, "crash", &key, key.as_bytes()).unwrap();
            let mut out = std::io::stdout().lock();
            writeln!(out, "written {key}").unwrap();
            out.flush().unwrap();
        }
    }
}

#[cfg(unix)]
#[test]
fn acknowledged_writes_survive_sigkill() {
    let dir = TempDir::new("crash");
    let exe = std::env::current_exe().unwrap();
    let mut acked: Vec<String> = Vec::new();
    for round in 0..3 {
        let mut child = Command::new(&exe)
            .args([
                "--exact",
                "crash_writer_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CRASH_DIR_ENV, dir.path())
            .env(CRASH_ROUND_ENV, round.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut reader = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        let mut this_round = 0;
        // Kill at a varying point, while the child is in the middle of writing.
        let kill_after = 200 + round * 137;
        while this_round < kill_after {
            line.clear();
            assert!(
                reader.read_line(&mut line).unwrap() > 0,
                "writer exited early"
            );
            if let Some(key) = line.trim_end().strip_prefix("written ") {
                acked.push(key.to_string());
                this_round += 1;
            }
        }
        child.kill().unwrap();
        child.wait().unwrap();
        // Whatever it printed before dying was acknowledged too.
        for line in reader.lines() {
            let line = line.unwrap();
            if let Some(key) = line.strip_prefix("written ") {
                acked.push(key.to_string());
            }
        }
        let store = SqliteStore::open(dir.path()).unwrap();
        for key in &acked {
            assert_eq!(
                store.get(&scope(), "crash", key).unwrap().as_deref(),
                Some(key.as_bytes()),
                "acknowledged write {key} lost after SIGKILL in round {round}"
            );
        }
    }
    assert!(acked.len() >= 200 + 337 + 474);
}

/// Commits reach the database file from the background checkpointer (SQLite's own automatic
/// checkpoint is off), while the store stays open and readable, and a reopen sees everything.
#[test]
fn background_checkpoints_move_commits_into_the_database_file() {
    let dir = TempDir::new("checkpoint");
    let db = dir.path().join(fc_store::DB_FILE);
    let store = SqliteStore::open(dir.path()).unwrap();
    let before = std::fs::metadata(&db).unwrap().len();
    let value = vec![7u8; 2048];
    for i in 0..400 {
        store
            .put(&scope(), "t", &format!("k{i:04}"), &value)
            .unwrap();
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::fs::metadata(&db).unwrap().len() < before + 400 * 2048 {
        assert!(
            std::time::Instant::now() < deadline,
            "no checkpoint reached {}",
            db.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(
        store.get(&scope(), "t", "k0399").unwrap(),
        Some(value.clone())
    );
    drop(store);
    let again = SqliteStore::open(dir.path()).unwrap();
    assert_eq!(again.get(&scope(), "t", "k0000").unwrap(), Some(value));
}
