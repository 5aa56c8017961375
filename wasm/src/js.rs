//! Bindings to JS globals, bound directly (as gloo does) so they work in a
//! service worker and an event page alike.

use wasm_bindgen::prelude::*;

#[wasm_bindgen]
extern "C" {
    /// The global `fetch`.
    #[wasm_bindgen(js_name = fetch)]
    pub fn fetch_with_init(input: &str, init: &web_sys::RequestInit) -> js_sys::Promise;

    /// `crypto.getRandomValues`.
    #[wasm_bindgen(js_namespace = crypto, js_name = getRandomValues, catch)]
    pub fn get_random_values(buf: &mut [u8]) -> Result<(), JsValue>;
}

/// Milliseconds since the epoch.
pub fn now_ms() -> f64 {
    js_sys::Date::now()
}

thread_local! {
    /// Milliseconds added to the computer's clock for the owner's local
    /// time: always 0, except in a development build whose tests move to
    /// another day or month (`NodeCore::shiftClock`).
    static CLOCK_SHIFT_MS: std::cell::Cell<f64> = const { std::cell::Cell::new(0.0) };
}

/// Moves the owner's local time by `ms` (development builds only).
#[cfg(feature = "dev")]
pub fn shift_clock(ms: f64) {
    CLOCK_SHIFT_MS.with(|c| c.set(ms));
}

/// The owner's local time: the caps, the billing month and the schedule
/// follow the computer's own zone.
pub fn local_now() -> spareband_protocol::controls::LocalTime {
    let at = js_sys::Date::now() + CLOCK_SHIFT_MS.with(|c| c.get());
    let d = js_sys::Date::new(&JsValue::from_f64(at));
    spareband_protocol::controls::LocalTime::at(
        spareband_protocol::controls::Date {
            year: d.get_full_year() as i32,
            month: d.get_month() as u8 + 1,
            day: d.get_date() as u8,
        },
        (d.get_hours() * 60 + d.get_minutes()) as u16,
    )
}

/// A uniform random number in `[0, 1)` (for backoff jitter).
pub fn random() -> f64 {
    js_sys::Math::random()
}

/// Waits `ms` milliseconds.
pub async fn sleep(ms: u32) {
    gloo_timers::future::TimeoutFuture::new(ms).await;
}

/// A JS error or value as text.
pub fn describe(v: &JsValue) -> String {
    if let Some(e) = v.dyn_ref::<js_sys::Error>() {
        return String::from(e.message());
    }
    v.as_string().unwrap_or_else(|| format!("{v:?}"))
}
