//! The core's values to and from JavaScript objects, written out rather than
//! derived with serde: the pages and extension storage exchange a few flat
//! shapes, and serde's generic (de)serializers, with the float formatting
//! their error messages bring, were a tenth of the core (issue 16).
//!
//! Reading is strict where the owner's input arrives (a settings patch: a
//! field of the wrong type is refused by name) and forgiving for what the
//! core saved itself (a field it cannot read keeps its default, so one bad
//! field never costs the node its key or its totals).
//!
//! Objects are plain objects and maps are plain objects too: Chrome keeps
//! extension storage as JSON, where a `Map` would be saved as `{}`.

use crate::patch::Patch;
use crate::settings::Settings;
use crate::stats::{Counts, Stats, Terms};
use js_sys::{Array, Object, Reflect};
use std::collections::BTreeMap;
use wasm_bindgen::{JsCast, JsValue};

/// A value as JavaScript sees it.
pub(crate) trait ToJs {
    /// The value.
    fn to_js(&self) -> JsValue;
}

/// A value read from JavaScript; `None` when it has another type.
pub(crate) trait FromJs: Sized {
    /// What the value must be, for the owner's words ("a whole number").
    const WHAT: &'static str;
    /// The value, if `v` is one.
    fn from_js(v: &JsValue) -> Option<Self>;
}

/// A plain object with these fields.
pub(crate) fn object(fields: &[(&str, JsValue)]) -> JsValue {
    let o = Object::new();
    for (k, v) in fields {
        let _ = Reflect::set(&o, &JsValue::from_str(k), v);
    }
    o.into()
}

fn get(o: &JsValue, key: &str) -> JsValue {
    if !o.is_object() {
        return JsValue::UNDEFINED;
    }
    Reflect::get(o, &JsValue::from_str(key)).unwrap_or(JsValue::UNDEFINED)
}

/// Field `key` of `o` into `slot` when it reads; otherwise `slot` keeps
/// what it has (the forgiving read of saved state).
pub(crate) fn keep<T: FromJs>(o: &JsValue, key: &str, slot: &mut T) {
    if let Some(v) = T::from_js(&get(o, key)) {
        *slot = v;
    }
}

/// Field `key` of `o`: `None` when absent or null, an error naming the
/// field when it has the wrong type (the strict read of the owner's input).
pub(crate) fn field<T: FromJs>(o: &JsValue, key: &str) -> Result<Option<T>, String> {
    let v = get(o, key);
    if v.is_undefined() || v.is_null() {
        return Ok(None);
    }
    T::from_js(&v)
        .map(Some)
        .ok_or_else(|| format!("{key} must be {}", T::WHAT))
}

impl ToJs for bool {
    fn to_js(&self) -> JsValue {
        JsValue::from_bool(*self)
    }
}

impl FromJs for bool {
    const WHAT: &'static str = "true or false";
    fn from_js(v: &JsValue) -> Option<Self> {
        v.as_bool()
    }
}

impl<T: ToJs + ?Sized> ToJs for &T {
    fn to_js(&self) -> JsValue {
        (**self).to_js()
    }
}

impl ToJs for str {
    fn to_js(&self) -> JsValue {
        JsValue::from_str(self)
    }
}

impl ToJs for String {
    fn to_js(&self) -> JsValue {
        JsValue::from_str(self)
    }
}

impl FromJs for String {
    const WHAT: &'static str = "text";
    fn from_js(v: &JsValue) -> Option<Self> {
        v.as_string()
    }
}

impl ToJs for f64 {
    fn to_js(&self) -> JsValue {
        JsValue::from_f64(*self)
    }
}

impl FromJs for f64 {
    const WHAT: &'static str = "a number";
    fn from_js(v: &JsValue) -> Option<Self> {
        v.as_f64().filter(|f| f.is_finite())
    }
}

/// Whole numbers: written as JavaScript numbers (exact up to 2^53, which
/// no count of bytes here reaches), read only when whole and in range.
macro_rules! whole {
    ($($t:ty),*) => {$(
        impl ToJs for $t {
            fn to_js(&self) -> JsValue {
                JsValue::from_f64(*self as f64)
            }
        }
        impl FromJs for $t {
            const WHAT: &'static str = "a whole number";
            fn from_js(v: &JsValue) -> Option<Self> {
                let f = v.as_f64()?;
                (f.fract() == 0.0 && f >= 0.0 && f <= <$t>::MAX as f64).then_some(f as $t)
            }
        }
    )*};
}
whole!(u8, u16, u32, u64, usize);

impl<T: ToJs> ToJs for Option<T> {
    fn to_js(&self) -> JsValue {
        self.as_ref().map_or(JsValue::UNDEFINED, ToJs::to_js)
    }
}

impl<T: FromJs> FromJs for Option<T> {
    const WHAT: &'static str = T::WHAT;
    fn from_js(v: &JsValue) -> Option<Self> {
        if v.is_undefined() || v.is_null() {
            Some(None)
        } else {
            T::from_js(v).map(Some)
        }
    }
}

impl<T: ToJs> ToJs for [T] {
    fn to_js(&self) -> JsValue {
        self.iter().map(ToJs::to_js).collect::<Array>().into()
    }
}

impl<T: ToJs> ToJs for Vec<T> {
    fn to_js(&self) -> JsValue {
        self.as_slice().to_js()
    }
}

impl<T: FromJs> FromJs for Vec<T> {
    const WHAT: &'static str = "a list";
    fn from_js(v: &JsValue) -> Option<Self> {
        v.dyn_ref::<Array>()?
            .iter()
            .map(|e| T::from_js(&e))
            .collect()
    }
}

impl<A: ToJs, B: ToJs> ToJs for (A, B) {
    fn to_js(&self) -> JsValue {
        Array::of2(&self.0.to_js(), &self.1.to_js()).into()
    }
}

impl<A: FromJs, B: FromJs> FromJs for (A, B) {
    const WHAT: &'static str = "a pair";
    fn from_js(v: &JsValue) -> Option<Self> {
        let a = v.dyn_ref::<Array>().filter(|a| a.length() == 2)?;
        Some((A::from_js(&a.get(0))?, B::from_js(&a.get(1))?))
    }
}

impl ToJs for BTreeMap<String, String> {
    fn to_js(&self) -> JsValue {
        let o = Object::new();
        for (k, v) in self {
            let _ = Reflect::set(&o, &k.to_js(), &v.to_js());
        }
        o.into()
    }
}

impl FromJs for BTreeMap<String, String> {
    const WHAT: &'static str = "an object";
    /// A plain object, or a `Map` as cores before issue 16 saved it (Firefox
    /// kept those); an entry that does not read is skipped, not the map.
    fn from_js(v: &JsValue) -> Option<Self> {
        let entries = match v.dyn_ref::<js_sys::Map>() {
            Some(m) => Array::from(&m.entries()),
            None => Object::entries(v.dyn_ref::<Object>()?),
        };
        // Inserted one by one: collecting would sort, and bring a sort.
        let mut map = BTreeMap::new();
        for (k, v) in entries
            .iter()
            .filter_map(|e| <(String, String)>::from_js(&e))
        {
            map.insert(k, v);
        }
        Some(map)
    }
}

/// [`ToJs`] and a forgiving [`FromJs`] for a struct, from one list of its
/// fields, each under its own name. Reading starts from the struct's
/// `Default` and [`keep`]s what reads; `to` alone gives [`ToJs`] only.
macro_rules! js_object {
    (to $ty:ty { $($field:ident),* $(,)? }) => {
        impl $crate::jsvalue::ToJs for $ty {
            fn to_js(&self) -> wasm_bindgen::JsValue {
                $crate::jsvalue::object(&[
                    $((stringify!($field), $crate::jsvalue::ToJs::to_js(&self.$field))),*
                ])
            }
        }
    };
    ($ty:ty, $what:literal { $($field:ident),* $(,)? }) => {
        js_object!(to $ty { $($field),* });
        impl $crate::jsvalue::FromJs for $ty {
            const WHAT: &'static str = $what;
            fn from_js(v: &wasm_bindgen::JsValue) -> Option<Self> {
                if !v.is_object() {
                    return None;
                }
                let mut s = <$ty>::default();
                $($crate::jsvalue::keep(v, stringify!($field), &mut s.$field);)*
                Some(s)
            }
        }
    };
}
pub(crate) use js_object;

js_object!(Settings, "settings" {
    sharing, consent, relay_url, daily_cap_mb, idle_only, max_concurrency,
    payout_address, blocked_domains, max_mbps_down, max_mbps_up,
    monthly_cap_gb, cap_reset_day, schedule, allow_metered,
});

js_object!(Counts, "counts" { up, down, requests });

js_object!(Terms, "reward terms" {
    epoch_ms, reward_per_gib, last_closed_epoch, claimable, earning,
});

js_object!(Stats, "statistics" {
    day, today, month, this_month, total, hours, verified, receipt_problems,
    verified_day, verified_today, verified_epochs, terms,
});

impl Patch {
    /// The patch the options page sent; a field of the wrong type is
    /// refused by name, and nothing is applied.
    pub(crate) fn from_js(v: &JsValue) -> Result<Patch, String> {
        if !v.is_object() {
            return Err("the settings must be an object".into());
        }
        Ok(Patch {
            relay_url: field(v, "relay_url")?,
            daily_cap_mb: field(v, "daily_cap_mb")?,
            idle_only: field(v, "idle_only")?,
            max_concurrency: field(v, "max_concurrency")?,
            payout_address: field(v, "payout_address")?,
            blocked_domains: field(v, "blocked_domains")?,
            max_mbps_down: field(v, "max_mbps_down")?,
            max_mbps_up: field(v, "max_mbps_up")?,
            monthly_cap_gb: field(v, "monthly_cap_gb")?,
            cap_reset_day: field(v, "cap_reset_day")?,
            schedule: field(v, "schedule")?,
            allow_metered: field(v, "allow_metered")?,
        })
    }
}
