//! Log events: `PutLogEvents`, `GetLogEvents`, `FilterLogEvents`, `TestMetricFilter`, retention
//! expiry, and the runtime's `append` / `tail`.

use super::filter::FilterPattern;
use super::*;
use crate::common::store_error;
use fc_store::{to_json_bytes, StoreError, Write};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};

const MAX_BATCH_EVENTS: usize = 10_000;
const MAX_BATCH_BYTES: usize = 1_048_576;
/// Bytes AWS adds to every event when sizing a batch or a response.
const EVENT_OVERHEAD: usize = 26;
const TOO_OLD_MS: i64 = 14 * DAY_MS;
const TOO_NEW_MS: i64 = 2 * 3_600_000;
const MAX_RESPONSE_BYTES: usize = 1_048_576;
/// Events FilterLogEvents examines per call before answering with a `nextToken`.
const FILTER_SCAN_BUDGET: usize = 100_000;
/// Events read per stream per store scan in FilterLogEvents.
const FILTER_CHUNK: usize = 100;

#[derive(Deserialize)]
struct InputEvent {
    timestamp: i64,
    message: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PutLogEventsInput {
    log_group_name: String,
    log_stream_name: String,
    log_events: Vec<InputEvent>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GetLogEventsInput {
    #[serde(default)]
    log_group_name: Option<String>,
    #[serde(default)]
    log_group_identifier: Option<String>,
    log_stream_name: String,
    #[serde(default)]
    start_time: Option<i64>,
    #[serde(default)]
    end_time: Option<i64>,
    #[serde(default)]
    next_token: Option<String>,
    #[serde(default)]
    limit: Option<i64>,
    #[serde(default)]
    start_from_head: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FilterLogEventsInput {
    #[serde(default)]
    log_group_name: Option<String>,
    #[serde(default)]
    log_group_identifier: Option<String>,
    #[serde(default)]
    log_stream_names: Option<Vec<String>>,
    #[serde(default)]
    log_stream_name_prefix: Option<String>,
    #[serde(default)]
    start_time: Option<i64>,
    #[serde(default)]
    end_time: Option<i64>,
    #[serde(default)]
    filter_pattern: Option<String>,
    #[serde(default)]
    next_token: Option<String>,
    #[serde(default)]
    limit: Option<i64>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct TestMetricFilterInput {
    #[serde(default)]
    filter_pattern: String,
    log_event_messages: Vec<String>,
}

/// One event read back: timestamp, sequence number, record.
type Ev = (i64, u64, EventRecord);

/// Oldest timestamp a read may show: retention hides what `expire` has not deleted yet.
fn retention_floor(g: &GroupRecord, now: i64) -> i64 {
    g.retention_in_days
        .map_or(0, |d| now.saturating_sub(d.saturating_mul(DAY_MS)))
}

/// A GetLogEvents position as AWS shapes it: 56 digits (timestamp, then sequence number).
fn position(ts: i64, seq: u64) -> String {
    format!("{:020}{:036}", clamp_ts(ts), seq.min(MAX_SEQ))
}

/// `f/<position>` (forward: events after) or `b/<position>` (backward: events before).
fn parse_events_token(t: &str) -> Result<(bool, i64, u64), ApiError> {
    let bad = || invalid("The specified nextToken is invalid.");
    let (forward, digits) = if let Some(d) = t.strip_prefix("f/") {
        (true, d)
    } else if let Some(d) = t.strip_prefix("b/") {
        (false, d)
    } else {
        return Err(bad());
    };
    if digits.len() != 56 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let ts: i64 = digits[..20].parse().map_err(|_| bad())?;
    let seq: u64 = digits[20..].parse().map_err(|_| bad())?;
    if ts > MAX_TS || seq > MAX_SEQ {
        return Err(bad());
    }
    Ok((forward, ts, seq))
}

/// A 56-digit event id, unique within a group: timestamp, sequence number, stream hash.
fn event_id(stream: &str, ts: i64, seq: u64) -> String {
    let digest = Sha256::digest(stream.as_bytes());
    let mut h = [0u8; 8];
    h.copy_from_slice(&digest[..8]);
    let h = u64::from_be_bytes(h) % 10_000_000_000_000_000;
    format!("{:020}{:020}{:016}", clamp_ts(ts), seq, h)
}

fn decode_event(key: &str, bytes: &[u8]) -> Result<EventRecord, StoreError> {
    serde_json::from_slice(bytes).map_err(|e| StoreError::Decode {
        table: EVENTS.to_string(),
        key: key.to_string(),
        reason: e.to_string(),
    })
}

/// Events of one stream in key order from a store scan, for FilterLogEvents' merge.
struct Cursor {
    prefix: String,
    after: String,
    /// Exclusive upper key bound (endTime).
    upper: Option<String>,
    buf: VecDeque<Ev>,
    done: bool,
}

impl Cursor {
    fn fill(&mut self, store: &dyn Store, scope: &Scope) -> Result<(), ApiError> {
        while self.buf.is_empty() && !self.done {
            let page = store
                .scan(scope, EVENTS, &self.prefix, Some(&self.after), FILTER_CHUNK)
                .map_err(store_error)?;
            if !page.more {
                self.done = true;
            }
            for (k, v) in page.items {
                if self.upper.as_ref().is_some_and(|u| k >= *u) {
                    self.done = true;
                    break;
                }
                let Some((ts, seq)) = parse_event_suffix(&k[self.prefix.len()..]) else {
                    continue;
                };
                let rec = decode_event(&k, &v).map_err(store_error)?;
                self.after = k;
                self.buf.push_back((ts, seq, rec));
            }
        }
        Ok(())
    }
}

impl Logs {
    /// Store `events` (sorted by timestamp) in one atomic batch with the updated stream and
    /// group records. The caller holds the write lock.
    fn store_events(
        &self,
        scope: &Scope,
        g: &mut GroupRecord,
        s: &mut StreamRecord,
        events: &[(i64, &str)],
        now: i64,
    ) -> Result<(), ApiError> {
        let old_index = time_index_key(&g.name, s.last_event_timestamp, &s.name);
        let prefix = events_prefix(&g.name, &s.name);
        let mut writes = Vec::with_capacity(events.len() + 4);
        let mut bytes = 0i64;
        for (ts, msg) in events {
            let seq = s.next_seq;
            s.next_seq += 1;
            let rec = EventRecord {
                v: 1,
                m: (*msg).to_string(),
                i: now,
            };
            writes.push(Write::Put {
                scope: scope.clone(),
                table: EVENTS.to_string(),
                key: format!("{prefix}{}", event_suffix(*ts, seq)),
                value: to_json_bytes(&rec).map_err(store_error)?,
            });
            bytes += i64::try_from(msg.len()).unwrap_or(i64::MAX);
            s.first_event_timestamp = Some(s.first_event_timestamp.map_or(*ts, |f| f.min(*ts)));
            s.last_event_timestamp = Some(s.last_event_timestamp.map_or(*ts, |l| l.max(*ts)));
        }
        if !events.is_empty() {
            s.last_ingestion_time = Some(now);
        }
        s.stored_bytes += bytes;
        s.uploads += 1;
        g.stored_bytes += bytes;
        let new_index = time_index_key(&g.name, s.last_event_timestamp, &s.name);
        if new_index != old_index {
            writes.push(Write::Delete {
                scope: scope.clone(),
                table: STREAMS_BY_TIME.to_string(),
                key: old_index,
            });
            writes.push(Write::Put {
                scope: scope.clone(),
                table: STREAMS_BY_TIME.to_string(),
                key: new_index,
                value: s.name.as_bytes().to_vec(),
            });
        }
        writes.push(Write::Put {
            scope: scope.clone(),
            table: STREAMS.to_string(),
            key: stream_key(&g.name, &s.name),
            value: to_json_bytes(&*s).map_err(store_error)?,
        });
        if bytes > 0 {
            writes.push(Write::Put {
                scope: scope.clone(),
                table: GROUPS.to_string(),
                key: g.name.clone(),
                value: to_json_bytes(&*g).map_err(store_error)?,
            });
        }
        self.store.batch(writes).map_err(store_error)
    }

    pub(super) fn put_log_events(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> Result<Value, ApiError> {
        let inp: PutLogEventsInput = super::input(input)?;
        validate_group_name(&inp.log_group_name, "logGroupName")?;
        validate_stream_name(&inp.log_stream_name)?;
        let events = inp.log_events;
        if events.is_empty() {
            return Err(validation(
                "logEvents",
                "[]",
                "Member must have length greater than or equal to 1",
            ));
        }
        if events.len() > MAX_BATCH_EVENTS {
            return Err(validation(
                "logEvents",
                format!("[{} events]", events.len()),
                "Member must have length less than or equal to 10000",
            ));
        }
        if let Some(i) = events.iter().position(|e| e.message.is_empty()) {
            return Err(validation(
                &format!("logEvents.{}.member.message", i + 1),
                "",
                "Member must have length greater than or equal to 1",
            ));
        }
        let size: usize = events
            .iter()
            .map(|e| e.message.len() + EVENT_OVERHEAD)
            .sum();
        if size > MAX_BATCH_BYTES {
            return Err(invalid(format!(
                "Upload too large: {size} bytes exceeds limit of {MAX_BATCH_BYTES}"
            )));
        }
        if events.windows(2).any(|w| w[1].timestamp < w[0].timestamp) {
            return Err(invalid(
                "Log events in a single PutLogEvents request must be in chronological order.",
            ));
        }
        let (first, last) = (events[0].timestamp, events[events.len() - 1].timestamp);
        if last.saturating_sub(first) > DAY_MS {
            return Err(invalid(
                "The batch of log events in a single PutLogEvents request cannot span more than 24 hours.",
            ));
        }
        let scope = Scope::new(&ctx.account, &ctx.region);
        let _guard = self.write_lock();
        let mut g = self.require_group(&scope, &inp.log_group_name)?;
        let mut s = self.require_stream(&scope, &g.name, &inp.log_stream_name)?;
        let now = now_ms();
        let too_old_before = now - TOO_OLD_MS;
        let expired_before = g
            .retention_in_days
            .map(|d| now.saturating_sub(d.saturating_mul(DAY_MS)));
        let too_new_after = now + TOO_NEW_MS;
        let floor = too_old_before.max(expired_before.unwrap_or(i64::MIN));
        let mut rejected = serde_json::Map::new();
        if let Some(i) = events.iter().rposition(|e| e.timestamp < too_old_before) {
            rejected.insert("tooOldLogEventEndIndex".into(), json!(i));
        }
        if let Some(cut) = expired_before {
            if let Some(i) = events.iter().rposition(|e| e.timestamp < cut) {
                rejected.insert("expiredLogEventEndIndex".into(), json!(i));
            }
        }
        if let Some(i) = events.iter().position(|e| e.timestamp > too_new_after) {
            rejected.insert("tooNewLogEventStartIndex".into(), json!(i));
        }
        let accepted: Vec<(i64, &str)> = events
            .iter()
            .filter(|e| e.timestamp >= floor && e.timestamp <= too_new_after)
            .map(|e| (e.timestamp, e.message.as_str()))
            .collect();
        self.store_events(&scope, &mut g, &mut s, &accepted, now)?;
        let mut out = json!({ "nextSequenceToken": groups::upload_token(&s) });
        if !rejected.is_empty() {
            if let Some(o) = out.as_object_mut() {
                o.insert("rejectedLogEventsInfo".into(), Value::Object(rejected));
            }
        }
        Ok(out)
    }

    /// Events of one stream between two exclusive key bounds, in key order (`forward`) or
    /// reverse key order, at most `limit` and about `MAX_RESPONSE_BYTES`.
    fn read_events(
        &self,
        scope: &Scope,
        prefix: &str,
        mut after: String,
        mut before: Option<String>,
        forward: bool,
        limit: usize,
    ) -> Result<Vec<Ev>, ApiError> {
        let mut out: Vec<Ev> = Vec::new();
        let mut bytes = 0usize;
        loop {
            let page = if forward {
                self.store
                    .scan(scope, EVENTS, prefix, Some(&after), CHUNK.min(limit + 1))
            } else {
                self.store.scan_rev(
                    scope,
                    EVENTS,
                    prefix,
                    before.as_deref(),
                    CHUNK.min(limit + 1),
                )
            }
            .map_err(store_error)?;
            for (k, v) in page.items {
                let outside = if forward {
                    before.as_ref().is_some_and(|b| k >= *b)
                } else {
                    k <= after
                };
                if outside {
                    return Ok(out);
                }
                let Some((ts, seq)) = parse_event_suffix(&k[prefix.len()..]) else {
                    continue;
                };
                let rec = decode_event(&k, &v).map_err(store_error)?;
                let size = rec.m.len() + EVENT_OVERHEAD;
                if out.len() == limit || (!out.is_empty() && bytes + size > MAX_RESPONSE_BYTES) {
                    return Ok(out);
                }
                bytes += size;
                out.push((ts, seq, rec));
                if forward {
                    after = k;
                } else {
                    before = Some(k);
                }
            }
            if !page.more {
                return Ok(out);
            }
        }
    }

    pub(super) fn get_log_events(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> Result<Value, ApiError> {
        let inp: GetLogEventsInput = super::input(input)?;
        let group = group_name_of(ctx, inp.log_group_name, inp.log_group_identifier)?;
        validate_stream_name(&inp.log_stream_name)?;
        let limit = check_limit(inp.limit, 10_000)?;
        let token = inp
            .next_token
            .as_deref()
            .map(parse_events_token)
            .transpose()?;
        let scope = Scope::new(&ctx.account, &ctx.region);
        let g = self.require_group(&scope, &group)?;
        self.require_stream(&scope, &group, &inp.log_stream_name)?;
        let prefix = events_prefix(&group, &inp.log_stream_name);
        let lower_ts = inp
            .start_time
            .unwrap_or(0)
            .max(retention_floor(&g, now_ms()));
        let lower = format!("{prefix}{:016}", clamp_ts(lower_ts));
        let upper = inp.end_time.map(|e| format!("{prefix}{:016}", clamp_ts(e)));
        let forward = match token {
            Some((f, _, _)) => f,
            None => inp.start_from_head.unwrap_or(false),
        };
        let events = if forward {
            let mut after = lower;
            if let Some((_, ts, seq)) = token {
                after = after.max(format!("{prefix}{}", event_suffix(ts, seq)));
            }
            self.read_events(&scope, &prefix, after, upper, true, limit)?
        } else {
            let mut before = upper;
            if let Some((_, ts, seq)) = token {
                let b = format!("{prefix}{}", event_suffix(ts, seq));
                before = Some(before.map_or(b.clone(), |u| u.min(b)));
            }
            let mut ev = self.read_events(&scope, &prefix, lower, before, false, limit)?;
            ev.reverse();
            ev
        };
        let (fwd, back) = match (events.first(), events.last()) {
            (Some(first), Some(last)) => (
                format!("f/{}", position(last.0, last.1)),
                format!("b/{}", position(first.0, first.1)),
            ),
            _ => match token {
                // Nothing more: the same token again, which is how clients know to stop.
                Some((true, ts, seq)) => (
                    format!("f/{}", position(ts, seq)),
                    format!("b/{}", position(ts, seq + 1)),
                ),
                Some((false, ts, seq)) => {
                    let prev = if seq > 0 {
                        (ts, seq - 1)
                    } else {
                        ((ts - 1).max(0), MAX_SEQ)
                    };
                    (
                        format!("f/{}", position(prev.0, prev.1)),
                        format!("b/{}", position(ts, seq)),
                    )
                }
                None => (
                    format!("f/{}", position(0, 0)),
                    format!("b/{}", position(0, 0)),
                ),
            },
        };
        let list: Vec<Value> = events
            .into_iter()
            .map(|(ts, _, rec)| json!({"timestamp": ts, "message": rec.m, "ingestionTime": rec.i}))
            .collect();
        Ok(json!({
            "events": list,
            "nextForwardToken": fwd,
            "nextBackwardToken": back,
        }))
    }

    pub(super) fn filter_log_events(
        &self,
        ctx: &RequestContext,
        input: Value,
    ) -> Result<Value, ApiError> {
        let inp: FilterLogEventsInput = super::input(input)?;
        let group = group_name_of(ctx, inp.log_group_name, inp.log_group_identifier)?;
        if inp.log_stream_names.is_some() && inp.log_stream_name_prefix.is_some() {
            return Err(invalid(
                "logStreamNames and logStreamNamePrefix are mutually exclusive parameters.",
            ));
        }
        let limit = check_limit(inp.limit, 10_000)?;
        let pattern_src = inp.filter_pattern.unwrap_or_default();
        if pattern_src.chars().count() > 1024 {
            return Err(validation(
                "filterPattern",
                &pattern_src,
                "Member must have length less than or equal to 1024",
            ));
        }
        let pattern =
            FilterPattern::parse(&pattern_src).map_err(|_| invalid("Invalid filter pattern"))?;
        let token_scope = format!("logs:FilterLogEvents:{group}");
        let resume: Option<(i64, u64, String)> = match &inp.next_token {
            None => None,
            Some(t) => {
                let bad = || invalid("The specified nextToken is invalid.");
                let pos = fc_types::page::decode(&token_scope, t).map_err(|_| bad())?;
                let mut parts = pos.splitn(3, ':');
                let ts = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
                let seq = parts.next().and_then(|p| p.parse().ok()).ok_or_else(bad)?;
                let stream = parts.next().ok_or_else(bad)?.to_string();
                Some((ts, seq, stream))
            }
        };
        let scope = Scope::new(&ctx.account, &ctx.region);
        let g = self.require_group(&scope, &group)?;

        // The streams searched, in name order.
        let mut names: Vec<String> = Vec::new();
        if let Some(list) = inp.log_stream_names {
            if list.is_empty() || list.len() > 100 {
                return Err(validation(
                    "logStreamNames",
                    format!("[{} names]", list.len()),
                    "Member must have length between 1 and 100",
                ));
            }
            for n in list {
                validate_stream_name(&n)?;
                if self.get_stream(&scope, &group, &n)?.is_some() {
                    names.push(n);
                }
            }
            names.sort();
            names.dedup();
        } else {
            let prefix = inp.log_stream_name_prefix.unwrap_or_default();
            if prefix.contains(SEP) {
                return Err(invalid("Invalid logStreamNamePrefix."));
            }
            let children = group_children(&group);
            let scan_prefix = format!("{children}{prefix}");
            let mut after: Option<String> = None;
            loop {
                let page = self
                    .store
                    .scan(&scope, STREAMS, &scan_prefix, after.as_deref(), CHUNK)
                    .map_err(store_error)?;
                for (k, _) in &page.items {
                    names.push(k[children.len()..].to_string());
                }
                after = page.items.last().map(|(k, _)| k.clone());
                if !page.more {
                    break;
                }
            }
        }

        let lower_ts = inp
            .start_time
            .unwrap_or(0)
            .max(retention_floor(&g, now_ms()));
        let mut cursors: Vec<Cursor> = Vec::with_capacity(names.len());
        for name in &names {
            let prefix = events_prefix(&group, name);
            let mut after = format!("{prefix}{:016}", clamp_ts(lower_ts));
            if let Some((pts, pseq, pstream)) = &resume {
                let resume_after = match name.cmp(pstream) {
                    // Streams before the resume stream: strictly later timestamps.
                    std::cmp::Ordering::Less => format!("{prefix}{:016}\u{1}", clamp_ts(*pts)),
                    std::cmp::Ordering::Equal => format!("{prefix}{}", event_suffix(*pts, *pseq)),
                    std::cmp::Ordering::Greater => format!("{prefix}{:016}", clamp_ts(*pts)),
                };
                after = after.max(resume_after);
            }
            cursors.push(Cursor {
                upper: inp.end_time.map(|e| format!("{prefix}{:016}", clamp_ts(e))),
                prefix,
                after,
                buf: VecDeque::new(),
                done: false,
            });
        }
        // Merge the streams by (timestamp, stream name, sequence number).
        let mut heap: BinaryHeap<Reverse<(i64, usize, u64)>> = BinaryHeap::new();
        for (i, c) in cursors.iter_mut().enumerate() {
            c.fill(self.store.as_ref(), &scope)?;
            if let Some((ts, seq, _)) = c.buf.front() {
                heap.push(Reverse((*ts, i, *seq)));
            }
        }
        let mut found: Vec<Value> = Vec::new();
        let mut bytes = 0usize;
        let mut scanned = 0usize;
        let mut last: Option<(i64, usize, u64)> = None;
        while let Some(Reverse((ts, i, seq))) = heap.pop() {
            let Some((_, _, rec)) = cursors[i].buf.pop_front() else {
                continue;
            };
            scanned += 1;
            last = Some((ts, i, seq));
            cursors[i].fill(self.store.as_ref(), &scope)?;
            if let Some((nts, nseq, _)) = cursors[i].buf.front() {
                heap.push(Reverse((*nts, i, *nseq)));
            }
            if pattern.matches(&rec.m) {
                bytes += rec.m.len() + EVENT_OVERHEAD;
                found.push(json!({
                    "logStreamName": names[i],
                    "timestamp": ts,
                    "message": rec.m,
                    "ingestionTime": rec.i,
                    "eventId": event_id(&names[i], ts, seq),
                }));
            }
            if found.len() >= limit || bytes >= MAX_RESPONSE_BYTES || scanned >= FILTER_SCAN_BUDGET
            {
                break;
            }
        }
        let searched: Vec<Value> = names
            .iter()
            .zip(&cursors)
            .map(|(n, c)| {
                json!({"logStreamName": n, "searchedCompletely": c.done && c.buf.is_empty()})
            })
            .collect();
        let mut out = json!({ "events": found, "searchedLogStreams": searched });
        if !heap.is_empty() {
            if let (Some((ts, i, seq)), Some(o)) = (last, out.as_object_mut()) {
                let pos = format!("{ts}:{seq}:{}", names[i]);
                o.insert(
                    "nextToken".into(),
                    json!(fc_types::page::encode(&token_scope, &pos)),
                );
            }
        }
        Ok(out)
    }

    pub(super) fn test_metric_filter(&self, input: Value) -> Result<Value, ApiError> {
        let inp: TestMetricFilterInput = super::input(input)?;
        if inp.log_event_messages.is_empty() || inp.log_event_messages.len() > 50 {
            return Err(validation(
                "logEventMessages",
                format!("[{} messages]", inp.log_event_messages.len()),
                "Member must have length between 1 and 50",
            ));
        }
        let pattern = FilterPattern::parse(&inp.filter_pattern)
            .map_err(|_| invalid("Invalid filter pattern"))?;
        let matches: Vec<Value> = inp
            .log_event_messages
            .iter()
            .enumerate()
            .filter_map(|(i, m)| {
                let values = pattern.extract(m)?;
                let map: serde_json::Map<String, Value> =
                    values.into_iter().map(|(k, v)| (k, json!(v))).collect();
                Some(json!({"eventNumber": i + 1, "eventMessage": m, "extractedValues": map}))
            })
            .collect();
        Ok(json!({ "matches": matches }))
    }

    /// Delete every event older than its group's retention period at `now_ms`, in every
    /// account and region. Returns how many events were deleted. The server calls this
    /// periodically; reads already hide such events.
    pub fn expire(&self, now_ms: i64) -> fc_store::Result<u64> {
        let mut total = 0;
        for scope in self.store.scopes(GROUPS)? {
            let mut after: Option<String> = None;
            loop {
                let (groups, more) = self.store.scan_json::<GroupRecord>(
                    &scope,
                    GROUPS,
                    "",
                    after.as_deref(),
                    CHUNK,
                )?;
                for (k, g) in groups {
                    after = Some(k);
                    if g.retention_in_days.is_some() {
                        total += self.expire_group(&scope, &g.name, retention_floor(&g, now_ms))?;
                    }
                }
                if !more {
                    break;
                }
            }
        }
        Ok(total)
    }

    fn expire_group(&self, scope: &Scope, group: &str, cutoff: i64) -> fc_store::Result<u64> {
        let children = group_children(group);
        let mut after: Option<String> = None;
        let mut total = 0;
        loop {
            let (streams, more) = self.store.scan_json::<StreamRecord>(
                scope,
                STREAMS,
                &children,
                after.as_deref(),
                CHUNK,
            )?;
            for (k, s) in streams {
                after = Some(k);
                if s.first_event_timestamp.is_some_and(|f| f < cutoff) {
                    total += self.expire_stream(scope, group, &s.name, cutoff)?;
                }
            }
            if !more {
                return Ok(total);
            }
        }
    }

    fn expire_stream(
        &self,
        scope: &Scope,
        group: &str,
        stream: &str,
        cutoff: i64,
    ) -> fc_store::Result<u64> {
        let prefix = events_prefix(group, stream);
        let bound = format!("{prefix}{:016}", clamp_ts(cutoff));
        let mut total = 0u64;
        loop {
            let page = self.store.scan(scope, EVENTS, &prefix, None, CHUNK)?;
            let mut victims: Vec<(String, i64)> = Vec::new();
            for (k, v) in &page.items {
                if *k >= bound {
                    break;
                }
                let rec = decode_event(k, v)?;
                victims.push((k.clone(), i64::try_from(rec.m.len()).unwrap_or(i64::MAX)));
            }
            if victims.is_empty() {
                return Ok(total);
            }
            let _guard = self.write_lock();
            let Some(mut g) = self.store.get_json::<GroupRecord>(scope, GROUPS, group)? else {
                return Ok(total);
            };
            let Some(mut s) =
                self.store
                    .get_json::<StreamRecord>(scope, STREAMS, &stream_key(group, stream))?
            else {
                return Ok(total);
            };
            let last_victim = victims.last().map(|(k, _)| k.clone());
            let next = self
                .store
                .scan(scope, EVENTS, &prefix, last_victim.as_deref(), 1)?;
            s.first_event_timestamp = next
                .items
                .first()
                .and_then(|(k, _)| parse_event_suffix(&k[prefix.len()..]))
                .map(|(ts, _)| ts);
            let freed: i64 = victims.iter().map(|(_, n)| *n).sum();
            s.stored_bytes = (s.stored_bytes - freed).max(0);
            g.stored_bytes = (g.stored_bytes - freed).max(0);
            let count = victims.len();
            let mut writes: Vec<Write> = victims
                .into_iter()
                .map(|(key, _)| Write::Delete {
                    scope: scope.clone(),
                    table: EVENTS.to_string(),
                    key,
                })
                .collect();
            writes.push(Write::Put {
                scope: scope.clone(),
                table: STREAMS.to_string(),
                key: stream_key(group, stream),
                value: to_json_bytes(&s)?,
            });
            writes.push(Write::Put {
                scope: scope.clone(),
                table: GROUPS.to_string(),
                key: group.to_string(),
                value: to_json_bytes(&g)?,
            });
            self.store.batch(writes)?;
            total += count as u64;
            if count < page.items.len() || !page.more {
                return Ok(total);
            }
        }
    }

    /// Append console output to `group`/`stream` of `account`/`region`, creating both if
    /// missing (like Docker's awslogs driver with `awslogs-create-group`). Events are stored
    /// in timestamp order, without PutLogEvents' age checks.
    pub fn append(
        &self,
        account: &str,
        region: &str,
        group: &str,
        stream: &str,
        events: &[(i64, String)],
    ) -> Result<(), ApiError> {
        validate_group_name(group, "logGroupName")?;
        validate_stream_name(stream)?;
        let scope = Scope::new(account, region);
        let _guard = self.write_lock();
        let mut g = match self.get_group(&scope, group)? {
            Some(g) => g,
            None => {
                let g = Self::new_group(group);
                self.store
                    .put_json(&scope, GROUPS, group, &g)
                    .map_err(store_error)?;
                g
            }
        };
        let mut s = match self.get_stream(&scope, group, stream)? {
            Some(s) => s,
            None => {
                let s = Self::new_stream(stream);
                self.put_new_stream(&scope, group, &s)?;
                s
            }
        };
        let mut sorted: Vec<(i64, &str)> = events.iter().map(|(t, m)| (*t, m.as_str())).collect();
        sorted.sort_by_key(|e| e.0);
        let now = now_ms();
        let mut start = 0;
        while start < sorted.len() {
            let mut end = start;
            let mut bytes = 0;
            while end < sorted.len() && end - start < MAX_BATCH_EVENTS {
                let size = sorted[end].1.len() + EVENT_OVERHEAD;
                if end > start && bytes + size > MAX_BATCH_BYTES {
                    break;
                }
                bytes += size;
                end += 1;
            }
            self.store_events(&scope, &mut g, &mut s, &sorted[start..end], now)?;
            start = end;
        }
        Ok(())
    }

    /// The last `limit` events of a stream, oldest first (console output). Empty when the
    /// stream does not exist.
    pub fn tail(
        &self,
        account: &str,
        region: &str,
        group: &str,
        stream: &str,
        limit: usize,
    ) -> Vec<(i64, String)> {
        let scope = Scope::new(account, region);
        let floor = match self.get_group(&scope, group) {
            Ok(Some(g)) => retention_floor(&g, now_ms()),
            Ok(None) => return Vec::new(),
            Err(e) => {
                tracing::warn!(error = %e, group, stream, "cannot read log group");
                return Vec::new();
            }
        };
        let prefix = events_prefix(group, stream);
        let lower = format!("{prefix}{:016}", clamp_ts(floor));
        match self.read_events(&scope, &prefix, lower, None, false, limit) {
            Ok(events) => events
                .into_iter()
                .rev()
                .map(|(ts, _, rec)| (ts, rec.m))
                .collect(),
            Err(e) => {
                tracing::warn!(error = %e, group, stream, "cannot read log events");
                Vec::new()
            }
        }
    }
}
