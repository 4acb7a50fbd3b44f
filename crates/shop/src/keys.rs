//! The key schema: where each document lives in ringkv.
//!
//! A key is the big-endian unsigned integer of `[tag, bytes…]`: one kind
//! tag byte, then the id's UTF-8 bytes (documents) or the shard number
//! (index shards). The tag is never 0, so distinct byte strings give
//! distinct integers: no two kinds and no two ids share a key. Ids are at
//! most 128 bytes (`model::MAX_ID_BYTES`), so keys stay far inside ringkv's
//! 480-byte limit. `docs/shop.md` has the table.

use num_bigint::{BigInt, Sign};

/// Index shards per listed kind: a listing reads all of them, a create or
/// delete changes one, so writers of different ids rarely contend.
pub const INDEX_SHARDS: u8 = 64;

/// A kind of document, and its tag byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A customer, by CID.
    Customer,
    /// A product, by PID.
    Product,
    /// An order, by OID.
    Order,
    /// A shard of the list of all CIDs.
    CustomerIndex,
    /// A shard of the list of all PIDs.
    ProductIndex,
    /// A shard of the list of all OIDs.
    OrderIndex,
}

impl Kind {
    /// The tag byte.
    pub const fn tag(self) -> u8 {
        match self {
            Kind::Customer => 0x01,
            Kind::Product => 0x02,
            Kind::Order => 0x03,
            Kind::CustomerIndex => 0x11,
            Kind::ProductIndex => 0x12,
            Kind::OrderIndex => 0x13,
        }
    }

    /// The name used in messages and MQTT topics.
    pub const fn name(self) -> &'static str {
        match self {
            Kind::Customer => "customer",
            Kind::Product => "product",
            Kind::Order => "order",
            Kind::CustomerIndex => "customer-index",
            Kind::ProductIndex => "product-index",
            Kind::OrderIndex => "order-index",
        }
    }

    /// What its ids are called on the wire.
    pub const fn id_name(self) -> &'static str {
        match self {
            Kind::Customer => "cid",
            Kind::Product => "pid",
            Kind::Order => "oid",
            Kind::CustomerIndex | Kind::ProductIndex | Kind::OrderIndex => "shard",
        }
    }

    /// The index that lists documents of this kind.
    pub const fn index(self) -> Kind {
        match self {
            Kind::Customer | Kind::CustomerIndex => Kind::CustomerIndex,
            Kind::Product | Kind::ProductIndex => Kind::ProductIndex,
            Kind::Order | Kind::OrderIndex => Kind::OrderIndex,
        }
    }

    /// The kinds whose changes are announced over MQTT.
    pub fn from_name(name: &str) -> Option<Kind> {
        [Kind::Customer, Kind::Product].into_iter().find(|k| k.name() == name)
    }
}

/// The key of the document of `kind` with `id`.
pub fn doc_key(kind: Kind, id: &str) -> BigInt {
    let mut bytes = Vec::with_capacity(1 + id.len());
    bytes.push(kind.tag());
    bytes.extend_from_slice(id.as_bytes());
    BigInt::from_bytes_be(Sign::Plus, &bytes)
}

/// The key of index shard `shard` of `index`.
pub fn shard_key(index: Kind, shard: u8) -> BigInt {
    BigInt::from_bytes_be(Sign::Plus, &[index.tag(), shard])
}

/// The shard that lists `id`: CRC-32 of its bytes, so every instance and
/// every version of the shop agrees.
pub fn shard_of(id: &str) -> u8 {
    (crc32fast::hash(id.as_bytes()) % u32::from(INDEX_SHARDS)) as u8
}

/// The MQTT topic announcing changes of one document:
/// `shop/v1/<kind>/<id>`, the id with `%`, `/`, `+` and `#` written as
/// `%25`, `%2F`, `%2B`, `%23` (a topic level may hold none of the last three).
pub fn topic(kind: Kind, id: &str) -> String {
    let mut t = format!("{TOPIC_ROOT}/{}/", kind.name());
    for c in id.chars() {
        match c {
            '%' => t.push_str("%25"),
            '/' => t.push_str("%2F"),
            '+' => t.push_str("%2B"),
            '#' => t.push_str("%23"),
            c => t.push(c),
        }
    }
    t
}

/// Where every shop topic lives; instances subscribe to `shop/v1/#`.
pub const TOPIC_ROOT: &str = "shop/v1";

/// The kind and id a topic announces, if it is one of ours.
pub fn parse_topic(topic: &str) -> Option<(Kind, String)> {
    let rest = topic.strip_prefix(TOPIC_ROOT)?.strip_prefix('/')?;
    let (kind, escaped) = rest.split_once('/')?;
    let kind = Kind::from_name(kind)?;
    let mut id = String::with_capacity(escaped.len());
    let mut rest = escaped;
    while let Some(i) = rest.find('%') {
        id.push_str(&rest[..i]);
        let code = rest.get(i + 1..i + 3)?;
        id.push(match code {
            "25" => '%',
            "2F" => '/',
            "2B" => '+',
            "23" => '#',
            _ => return None,
        });
        rest = &rest[i + 3..];
    }
    id.push_str(rest);
    Some((kind, id))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn keys_never_collide_across_kinds_or_ids() {
        let ids = ["", "a", "ab", "\u{1}", "a\u{0}", "é", "p1", "p10", "1"];
        let mut seen = HashSet::new();
        for kind in [Kind::Customer, Kind::Product, Kind::Order] {
            for id in ids {
                assert!(seen.insert(doc_key(kind, id)), "{kind:?} {id:?}");
            }
        }
        for index in [Kind::CustomerIndex, Kind::ProductIndex, Kind::OrderIndex] {
            for shard in 0..INDEX_SHARDS {
                assert!(seen.insert(shard_key(index, shard)), "{index:?} {shard}");
            }
        }
    }

    #[test]
    fn the_longest_id_fits_a_key() {
        let id = "é".repeat(64); // 128 bytes
        let bytes = doc_key(Kind::Product, &id).to_signed_bytes_be();
        assert!(bytes.len() <= 480, "{}", bytes.len());
        assert_eq!(doc_key(Kind::Customer, "A"), BigInt::from(0x0141));
    }

    #[test]
    fn shards_are_stable_and_in_range() {
        assert_eq!(shard_of("p1"), shard_of("p1"));
        let spread: HashSet<u8> = (0..1000).map(|i| shard_of(&format!("p{i}"))).collect();
        assert_eq!(spread.len(), usize::from(INDEX_SHARDS));
    }

    #[test]
    fn topics_escape_and_parse_back() {
        for id in ["p1", "a/b", "50%+#", "%2F", "ünï cødé", "+"] {
            let t = topic(Kind::Product, id);
            assert_eq!(t.matches('/').count(), 3, "{t}");
            assert!(!t[TOPIC_ROOT.len()..].contains(['+', '#']), "{t}");
            assert_eq!(parse_topic(&t), Some((Kind::Product, id.to_owned())), "{t}");
        }
        assert_eq!(topic(Kind::Customer, "a/b"), "shop/v1/customer/a%2Fb");
        for bad in [
            "shop/v1/order-index/x",
            "shop/v2/product/x",
            "shop/v1/product",
            "shop/v1/product/%zz",
            "shop/v1/product/%2",
        ] {
            assert_eq!(parse_topic(bad), None, "{bad}");
        }
    }
}
