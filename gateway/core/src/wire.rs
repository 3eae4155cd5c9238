//! Reading request bodies exactly as their JSON Schemas say, where serde's
//! derives are more lenient (`deserialize_with` helpers):
//!
//! - JSON has one number type: `1.0` is the integer 1 (JSON Schema agrees), so
//!   an integer field takes a whole float ([`integer`], [`option_integer`]);
//! - a derived struct also takes an array of its fields in order; a field
//!   whose schema is an object takes only an object ([`object`],
//!   [`option_object`], [`vec_of_objects`]).

use std::fmt;
use std::marker::PhantomData;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, SeqAccess, Unexpected, Visitor};

/// An integer field that also takes a whole float (`1.0`).
pub fn integer<'de, D: Deserializer<'de>, T: TryFrom<i64> + TryFrom<u64>>(d: D) -> Result<T, D::Error> {
    WholeSeed(PhantomData).deserialize(d)
}

/// An optional integer field (null is `None`; give it `#[serde(default)]`) that also takes a whole float.
pub fn option_integer<'de, D: Deserializer<'de>, T: TryFrom<i64> + TryFrom<u64>>(d: D) -> Result<Option<T>, D::Error> {
    d.deserialize_option(OptionOf(WholeSeed(PhantomData)))
}

/// A struct field that takes only a JSON object.
pub fn object<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<T, D::Error> {
    T::deserialize(Objects(d))
}

/// An optional struct field (null is `None`; give it `#[serde(default)]`) that takes only a JSON object.
pub fn option_object<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Option<T>, D::Error> {
    d.deserialize_option(OptionOf(ObjectSeed(PhantomData)))
}

/// A list of structs, each only a JSON object.
pub fn vec_of_objects<'de, D: Deserializer<'de>, T: Deserialize<'de>>(d: D) -> Result<Vec<T>, D::Error> {
    struct Items<T>(PhantomData<T>);
    impl<'de, T: Deserialize<'de>> Visitor<'de> for Items<T> {
        type Value = Vec<T>;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an array of objects")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
            let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(4096));
            while let Some(item) = seq.next_element_seed(ObjectSeed(PhantomData))? {
                items.push(item);
            }
            Ok(items)
        }
    }
    d.deserialize_seq(Items(PhantomData))
}

/// A whole float as an integer: `Ok` signed, `Err` unsigned beyond `i64`; `None` if it has a fraction.
pub fn whole(v: f64) -> Option<Result<i64, u64>> {
    if !v.is_finite() || v.fract() != 0.0 {
        None
    } else if (-9.2e18..9.2e18).contains(&v) {
        Some(Ok(v as i64))
    } else if (0.0..1.8e19).contains(&v) {
        Some(Err(v as u64))
    } else {
        None
    }
}

struct WholeSeed<T>(PhantomData<T>);

impl<'de, T: TryFrom<i64> + TryFrom<u64>> DeserializeSeed<'de> for WholeSeed<T> {
    type Value = T;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<T, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de, T: TryFrom<i64> + TryFrom<u64>> Visitor<'de> for WholeSeed<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an integer")
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<T, E> {
        T::try_from(v).map_err(|_| E::invalid_value(Unexpected::Signed(v), &"an integer in range"))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<T, E> {
        T::try_from(v).map_err(|_| E::invalid_value(Unexpected::Unsigned(v), &"an integer in range"))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<T, E> {
        match whole(v) {
            Some(Ok(i)) => self.visit_i64(i),
            Some(Err(u)) => self.visit_u64(u),
            None => Err(E::invalid_type(Unexpected::Float(v), &self)),
        }
    }
}

struct ObjectSeed<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> DeserializeSeed<'de> for ObjectSeed<T> {
    type Value = T;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<T, D::Error> {
        T::deserialize(Objects(d))
    }
}

/// `null` is `None`, anything else goes to the seed.
struct OptionOf<S>(S);

impl<'de, S: DeserializeSeed<'de>> Visitor<'de> for OptionOf<S> {
    type Value = Option<S::Value>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("null or a value")
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        self.0.deserialize(d).map(Some)
    }
}

/// A deserializer that reads a struct only from a map (a JSON object): the
/// rest goes to the one it wraps.
struct Objects<D>(D);

macro_rules! forward {
    ($($method:ident)*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, Self::Error> {
            self.0.$method(visitor)
        }
    )*};
}

impl<'de, D: Deserializer<'de>> Deserializer<'de> for Objects<D> {
    type Error = D::Error;

    forward! {
        deserialize_any deserialize_bool deserialize_i8 deserialize_i16 deserialize_i32 deserialize_i64 deserialize_i128
        deserialize_u8 deserialize_u16 deserialize_u32 deserialize_u64 deserialize_u128 deserialize_f32 deserialize_f64
        deserialize_char deserialize_str deserialize_string deserialize_bytes deserialize_byte_buf deserialize_option
        deserialize_unit deserialize_seq deserialize_map deserialize_identifier deserialize_ignored_any
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(self, name: &'static str, visitor: V) -> Result<V::Value, Self::Error> {
        self.0.deserialize_unit_struct(name, visitor)
    }
    fn deserialize_newtype_struct<V: Visitor<'de>>(self, name: &'static str, visitor: V) -> Result<V::Value, Self::Error> {
        self.0.deserialize_newtype_struct(name, visitor)
    }
    fn deserialize_tuple<V: Visitor<'de>>(self, len: usize, visitor: V) -> Result<V::Value, Self::Error> {
        self.0.deserialize_tuple(len, visitor)
    }
    fn deserialize_tuple_struct<V: Visitor<'de>>(self, name: &'static str, len: usize, visitor: V) -> Result<V::Value, Self::Error> {
        self.0.deserialize_tuple_struct(name, len, visitor)
    }
    fn deserialize_enum<V: Visitor<'de>>(self, name: &'static str, variants: &'static [&'static str], visitor: V) -> Result<V::Value, Self::Error> {
        self.0.deserialize_enum(name, variants, visitor)
    }
    fn deserialize_struct<V: Visitor<'de>>(self, _: &'static str, _: &'static [&'static str], visitor: V) -> Result<V::Value, Self::Error> {
        self.0.deserialize_map(visitor)
    }
    fn is_human_readable(&self) -> bool {
        self.0.is_human_readable()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default, PartialEq, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Inner {
        a: u32,
        #[serde(default)]
        b: Option<String>,
    }

    #[derive(Debug, PartialEq, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Outer {
        #[serde(deserialize_with = "integer")]
        n: i64,
        #[serde(default, deserialize_with = "option_integer")]
        limit: Option<usize>,
        #[serde(default, deserialize_with = "option_object")]
        one: Option<Inner>,
        #[serde(default, deserialize_with = "vec_of_objects")]
        many: Vec<Inner>,
        #[serde(default, deserialize_with = "object")]
        sole: Inner,
    }

    fn read(v: serde_json::Value) -> Result<Outer, String> {
        serde_json::from_str(&v.to_string()).map_err(|e| e.to_string())
    }

    #[test]
    fn whole_floats_are_integers_and_fractions_are_not() {
        let o = read(serde_json::json!({"n": -325.0, "limit": 7.0})).unwrap();
        assert_eq!((o.n, o.limit), (-325, Some(7)));
        assert_eq!(read(serde_json::json!({"n": 1, "limit": null})).unwrap().limit, None);
        assert!(read(serde_json::json!({"n": 1.5})).is_err());
        assert!(read(serde_json::json!({"n": 1, "limit": -1})).is_err(), "usize");
        assert!(read(serde_json::json!({"n": "1"})).is_err());
    }

    #[test]
    fn structs_are_objects_not_arrays() {
        let o = read(serde_json::json!({"n": 1, "one": {"a": 1}, "many": [{"a": 2, "b": "x"}], "sole": {"a": 3}})).unwrap();
        assert_eq!(o.one, Some(Inner { a: 1, b: None }));
        assert_eq!(o.many, vec![Inner { a: 2, b: Some("x".into()) }]);
        assert_eq!(o.sole, Inner { a: 3, b: None });
        assert_eq!(read(serde_json::json!({"n": 1, "one": null})).unwrap().one, None);
        for bad in [
            serde_json::json!({"n": 1, "one": [1]}),
            serde_json::json!({"n": 1, "many": [[2, "x"]]}),
            serde_json::json!({"n": 1, "sole": [3]}),
            serde_json::json!({"n": 1, "one": {"a": 1, "c": 2}}),
        ] {
            assert!(read(bad.clone()).is_err(), "{bad} accepted");
        }
        // The plain derive takes the array form.
        assert!(serde_json::from_str::<Inner>("[1]").is_ok());
    }
}
