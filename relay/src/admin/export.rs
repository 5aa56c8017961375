//! CSV downloads: the nodes table (every row matching the filter) and what a
//! closed epoch paid each node. Written with the `csv` crate; every field is
//! passed through [`neutralise`] first.

use super::query::node_query;
use super::views::{current_epoch, internal};
use crate::error::{ApiError, ErrorCode};
use crate::AppState;
use axum::body::Body;
use axum::extract::{Path, Request, State};
use axum::response::{IntoResponse, Response};
use http::{header, HeaderValue};
use spareband_ledger::dashboard;
use std::sync::Arc;

/// A field that a spreadsheet would run as a formula gets a leading `'`. No
/// value the relay stores starts with such a character (a number may start
/// with `-`), but one that did is neutralised anyway.
fn neutralise(s: &str) -> std::borrow::Cow<'_, str> {
    if s.starts_with(['=', '+', '-', '@']) && s.parse::<i64>().is_err() {
        format!("'{s}").into()
    } else {
        s.into()
    }
}

/// The rows as CSV (quoted where needed, CRLF line ends, RFC 4180).
fn to_csv<const N: usize>(header: [&str; N], rows: &[[String; N]]) -> Vec<u8> {
    let mut w = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .from_writer(Vec::new());
    // Writing to a Vec cannot fail; the fields are text.
    let _ = w.write_record(header);
    for row in rows {
        let _ = w.write_record(row.iter().map(|f| neutralise(f).into_owned()));
    }
    w.into_inner().unwrap_or_default()
}

fn csv_response(name: &str, body: Vec<u8>) -> Response {
    let mut res = (
        [(header::CONTENT_TYPE, "text/csv; charset=utf-8")],
        Body::from(body),
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&format!("attachment; filename=\"{name}\"")) {
        res.headers_mut().insert(header::CONTENT_DISPOSITION, v);
    }
    res
}

/// `GET /admin/api/nodes.csv`: the nodes table, every page.
pub(super) async fn nodes_csv(State(state): State<Arc<AppState>>, req: Request) -> Response {
    let q = match node_query(req.uri().query()) {
        Ok(q) => q,
        Err(e) => return e.into_response(),
    };
    let epoch = current_epoch(&state);
    let nodes = match dashboard::all_nodes(&state.db, &q, &epoch).await {
        Ok(n) => n,
        Err(e) => return internal(e),
    };
    let rows: Vec<[String; 12]> = nodes
        .into_iter()
        .map(|n| {
            [
                n.node_id,
                n.payout_address.unwrap_or_default(),
                n.client_kind,
                n.country.unwrap_or_default(),
                n.online.to_string(),
                n.last_seen_ms.to_string(),
                n.bytes_epoch.to_string(),
                n.bytes_all.to_string(),
                n.jobs_ok.to_string(),
                n.jobs_failed.to_string(),
                n.earnings_epoch,
                n.earnings_all,
            ]
        })
        .collect();
    let body = to_csv(
        [
            "node_id",
            "payout_address",
            "client_kind",
            "country",
            "online",
            "last_seen_ms",
            "bytes_epoch",
            "bytes_all",
            "jobs_ok",
            "jobs_failed",
            "earnings_epoch",
            "earnings_all",
        ],
        &rows,
    );
    csv_response(&format!("spareband-nodes-epoch-{}.csv", epoch.index), body)
}

/// `GET /admin/api/epochs/{epoch}/nodes.csv`: what a closed epoch paid each
/// node.
pub(super) async fn epoch_csv(
    State(state): State<Arc<AppState>>,
    Path(epoch): Path<String>,
) -> Response {
    let Some(epoch) = epoch.parse::<i64>().ok().filter(|e| *e >= 0) else {
        return ApiError::invalid_request("the epoch must be a whole number").into_response();
    };
    match dashboard::epoch_closed(&state.db, epoch).await {
        Err(e) => return internal(e),
        Ok(false) => {
            return ApiError::new(ErrorCode::NotFound, format!("epoch {epoch} is not closed"))
                .into_response()
        }
        Ok(true) => {}
    }
    let list = match dashboard::epoch_nodes(&state.db, epoch).await {
        Ok(l) => l,
        Err(e) => return internal(e),
    };
    let rows: Vec<[String; 5]> = list
        .into_iter()
        .map(|r| {
            [
                epoch.to_string(),
                r.node_id,
                r.address,
                r.bytes.to_string(),
                r.amount,
            ]
        })
        .collect();
    let body = to_csv(
        ["epoch", "node_id", "payout_address", "bytes", "amount"],
        &rows,
    );
    csv_response(&format!("spareband-epoch-{epoch}.csv"), body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_are_quoted_and_formulas_neutralised() {
        let rows = [[
            "abc".to_string(),
            "a,b".into(),
            "say \"hi\"".into(),
            "=cmd()".into(),
            "-5".into(),
        ]];
        let out = String::from_utf8(to_csv(["a", "b", "c", "d", "e"], &rows)).unwrap();
        assert_eq!(
            out,
            "a,b,c,d,e\r\nabc,\"a,b\",\"say \"\"hi\"\"\",'=cmd(),-5\r\n"
        );
    }
}
