//! One page of a list answer, read item by item: each item is handed on as
//! soon as it is parsed, so a page of a thousand Deployments is never held
//! as one parsed document (with every item's managedFields) next to its
//! text. For a large application this is most of a no-op re-check's peak
//! memory.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;

/// Passes every item of the list answer `text` to `each`, in order, and
/// returns the continue token of the next page, if any.
pub fn for_each_item(
    text: &str,
    each: &mut dyn FnMut(Value),
) -> Result<Option<String>, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_str(text);
    let next = Page { each }.deserialize(&mut de)?;
    de.end()?;
    Ok(next)
}

/// The list object: `items` streamed, `metadata.continue` kept, the rest
/// skipped.
struct Page<'a> {
    each: &'a mut dyn FnMut(Value),
}

impl<'de> DeserializeSeed<'de> for Page<'_> {
    type Value = Option<String>;

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<Self::Value, D::Error> {
        de.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Page<'_> {
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a Kubernetes list")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut next = None;
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match key.as_ref() {
                "items" => map.next_value_seed(Items { each: self.each })?,
                "metadata" => {
                    let metadata: ListMeta = map.next_value()?;
                    next = metadata.continue_token.filter(|t| !t.is_empty());
                }
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(next)
    }
}

#[derive(serde::Deserialize)]
struct ListMeta {
    #[serde(rename = "continue", default)]
    continue_token: Option<String>,
}

/// The `items` array (or null), item by item.
struct Items<'a> {
    each: &'a mut dyn FnMut(Value),
}

impl<'de> DeserializeSeed<'de> for Items<'_> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, de: D) -> Result<(), D::Error> {
        de.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Items<'_> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list of objects")
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        Ok(())
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(item) = seq.next_element::<Value>()? {
            (self.each)(item);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(text: &str) -> (Vec<String>, Option<String>) {
        let mut seen = Vec::new();
        let next = for_each_item(text, &mut |item| {
            seen.push(item["metadata"]["name"].as_str().unwrap_or("").to_string())
        })
        .expect("a list");
        (seen, next)
    }

    #[test]
    fn items_come_in_order_with_the_next_page_token() {
        let text = r#"{"kind":"ConfigMapList","apiVersion":"v1",
            "metadata":{"resourceVersion":"7","continue":"abc"},
            "items":[{"metadata":{"name":"a"}},{"metadata":{"name":"b"},"data":{"k":"v"}}]}"#;
        assert_eq!(
            names(text),
            (vec!["a".into(), "b".into()], Some("abc".into()))
        );
    }

    #[test]
    fn the_last_page_and_an_empty_list_have_no_token() {
        let text = r#"{"items":[],"metadata":{"continue":""}}"#;
        assert_eq!(names(text), (Vec::new(), None));
        let text = r#"{"kind":"List","items":null,"metadata":{}}"#;
        assert_eq!(names(text), (Vec::new(), None));
    }

    #[test]
    fn a_cut_answer_is_an_error() {
        assert!(for_each_item(r#"{"items":[{"metadata":{}"#, &mut |_| {}).is_err());
    }
}
