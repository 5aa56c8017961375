//! The nodes table's query string, read strictly: unknown parameters and
//! bad values are an error that names them, never silently ignored.

use crate::error::ApiError;
use spareband_ledger::dashboard::{NodeQuery, SortKey, DEFAULT_PER_PAGE, MAX_PER_PAGE};

/// Reads the nodes table's query string; unknown parameters are an error,
/// so a typo is never silently ignored.
pub(super) fn node_query(query: Option<&str>) -> Result<NodeQuery, ApiError> {
    let mut q = NodeQuery {
        sort: SortKey::BytesEpoch,
        desc: true,
        q: None,
        kind: None,
        online: None,
        page: 1,
        per_page: DEFAULT_PER_PAGE,
    };
    for (k, v) in url::form_urlencoded::parse(query.unwrap_or("").as_bytes()) {
        match k.as_ref() {
            "sort" => {
                q.sort = SortKey::parse(&v).ok_or_else(|| {
                    let names: Vec<&str> = SortKey::ALL.iter().map(|(n, _)| *n).collect();
                    ApiError::invalid_request(format!("sort must be one of {}", names.join(", ")))
                })?
            }
            "order" => {
                q.desc = match v.as_ref() {
                    "asc" => false,
                    "desc" => true,
                    _ => return Err(ApiError::invalid_request("order must be asc or desc")),
                }
            }
            "q" => {
                if v.chars().count() > 100 {
                    return Err(ApiError::invalid_request("q is at most 100 characters"));
                }
                q.q = Some(v.into_owned());
            }
            "kind" => {
                q.kind = match v.as_ref() {
                    "" | "all" => None,
                    "extension" | "native" => Some(v.into_owned()),
                    _ => {
                        return Err(ApiError::invalid_request(
                            "kind must be extension, native or all",
                        ))
                    }
                }
            }
            "status" => {
                q.online = match v.as_ref() {
                    "" | "all" => None,
                    "online" => Some(true),
                    "offline" => Some(false),
                    _ => {
                        return Err(ApiError::invalid_request(
                            "status must be online, offline or all",
                        ))
                    }
                }
            }
            "page" => {
                q.page = v
                    .parse()
                    .ok()
                    .filter(|p| (1..=1_000_000).contains(p))
                    .ok_or_else(|| {
                        ApiError::invalid_request("page must be a number from 1 to 1000000")
                    })?
            }
            "per_page" => {
                q.per_page = v
                    .parse()
                    .ok()
                    .filter(|p| (1..=MAX_PER_PAGE).contains(p))
                    .ok_or_else(|| {
                        ApiError::invalid_request(format!(
                            "per_page must be a number from 1 to {}",
                            MAX_PER_PAGE
                        ))
                    })?
            }
            other => {
                return Err(ApiError::invalid_request(format!(
                    "unknown parameter '{}'",
                    other.chars().take(40).collect::<String>()
                )))
            }
        }
    }
    Ok(q)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorCode;

    #[test]
    fn the_nodes_query_is_strict() {
        assert!(node_query(Some(
            "sort=bytes_all&order=asc&page=2&per_page=10&status=online&kind=native&q=ab"
        ))
        .is_ok());
        for bad in [
            "sort=drop%20table",
            "order=sideways",
            "per_page=0",
            "per_page=501",
            "page=0",
            "kind=robot",
            "status=maybe",
            "colour=red",
        ] {
            let e = node_query(Some(bad)).unwrap_err();
            assert_eq!(e.code, ErrorCode::InvalidRequest, "{bad}");
        }
    }
}
