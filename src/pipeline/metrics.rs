//! The metrics page: the registry's exposition, in the format the scraper
//! asks for.

use crate::body::{Cuttable, ResponseBody};
use crate::state::Metrics;
use http::{header, HeaderMap, Response, StatusCode};

/// OpenMetrics text when `Accept` names it (Prometheus does), otherwise the
/// Prometheus text format 0.0.4 (what curl gets).
pub fn page(
    metrics: &Metrics,
    headers: &HeaderMap,
    head: bool,
) -> Result<Response<Cuttable<ResponseBody>>, http::Error> {
    let openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    let (text, content_type) = metrics.encode(openmetrics);
    let len = text.len();
    let body = if head {
        ResponseBody::empty()
    } else {
        ResponseBody::full(text)
    };
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, content_type)
        .header(header::CONTENT_LENGTH, len)
        .header(header::CACHE_CONTROL, "no-store")
        .body(Cuttable::never(body))
}
