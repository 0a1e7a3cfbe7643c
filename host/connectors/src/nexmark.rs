//! The Nexmark event generator.
//!
//! Follows the reference generator of the nexmark/nexmark project
//! (`GeneratorConfig`, `PersonGenerator`, `AuctionGenerator`,
//! `BidGenerator`, `PriceGenerator`, `StringsGenerator`), which descends
//! from Apache Beam's Nexmark suite:
//!
//! - events are numbered `0, 1, 2, …`; out of every 50 consecutive numbers
//!   1 is a person, 3 are auctions and 46 are bids;
//! - person ids and auction ids start at 1000 and grow with the event
//!   number, so a bid or auction can name a person or auction by id;
//! - bids go to a *hot* auction (the first of the latest block of 100
//!   auctions) with probability 1/2, else to a random auction among the
//!   last 100 in flight (plus a lead of 10 not yet created); bidders and
//!   sellers are hot with probability 3/4 (the latest block of 100
//!   persons), else one of the last 1000 active persons (plus a lead of 10);
//! - prices are `round(10^(6u) * 100)` cents for `u` uniform in `[0, 1)`;
//! - event `n` happens at `base_time + n * 1000 / rate` ms;
//! - records are padded with an `extra` string to the reference's average
//!   sizes (person 200 bytes, auction 500, bid 100).
//!
//! Unlike the reference, which draws from one unseeded generator, every
//! event draws from its own generator seeded from `(seed, n)`, so an event
//! depends only on the seed and its number: the stream is the same for
//! any parallelism and any split of the numbers, and a reader can resume
//! at any event (what a checkpoint records). Sampling is
//! xoshiro256++ (`rand::rngs::Xoshiro256PlusPlus`), not Java's LCG, so the
//! values themselves differ from the reference's; the distributions are its.

use rand::rngs::Xoshiro256PlusPlus;
use rand::{RngExt, SeedableRng};
use weir_types::jobgraph::NexmarkKind;

/// Persons, auctions and bids out of every [`TOTAL_PROPORTION`] events.
const PERSON_PROPORTION: u64 = 1;
const AUCTION_PROPORTION: u64 = 3;
/// Bids: the rest of the 50.
const TOTAL_PROPORTION: u64 = 50;

/// `,"name":`, the separator and key of a field after the first, made at
/// compile time so that writing it is one copy.
macro_rules! key {
    ($name:literal) => {
        concat!(",\"", $name, "\":")
    };
}

/// First person id and first auction id; first category.
const FIRST_PERSON_ID: u64 = 1000;
const FIRST_AUCTION_ID: u64 = 1000;
const FIRST_CATEGORY_ID: u64 = 10;
const NUM_CATEGORIES: u64 = 5;

/// Ids not yet created that a random pick may still name.
const PERSON_ID_LEAD: u64 = 10;
const AUCTION_ID_LEAD: u64 = 10;
/// Hot persons and auctions are the first of each block of this many.
const HOT_BLOCK: u64 = 100;
/// One in this many bids is *not* for a hot auction.
const HOT_AUCTION_RATIO: u32 = 2;
/// One in this many bids (auctions) is *not* by a hot bidder (seller).
const HOT_BIDDER_RATIO: u32 = 4;
const HOT_SELLER_RATIO: u32 = 4;
/// Auctions in flight per generator, and persons active.
const NUM_IN_FLIGHT_AUCTIONS: u64 = 100;
const NUM_ACTIVE_PEOPLE: u64 = 1000;
/// Average encoded sizes the `extra` field pads to, in bytes.
const AVG_PERSON_BYTES: usize = 200;
const AVG_AUCTION_BYTES: usize = 500;
const AVG_BID_BYTES: usize = 100;

const US_STATES: [&str; 6] = ["AZ", "CA", "ID", "OR", "WA", "WY"];
const US_CITIES: [&str; 10] = [
    "Phoenix",
    "Los Angeles",
    "San Francisco",
    "Boise",
    "Portland",
    "Bend",
    "Redmond",
    "Seattle",
    "Kent",
    "Cheyenne",
];
const FIRST_NAMES: [&str; 11] = [
    "Peter", "Paul", "Luke", "John", "Saul", "Vicky", "Kate", "Julie", "Sarah", "Deiter", "Walter",
];
const LAST_NAMES: [&str; 9] = [
    "Shultz", "Abrams", "Spencer", "White", "Bartels", "Walton", "Smith", "Jones", "Noris",
];

/// Settings of one Nexmark stream.
#[derive(Debug, Clone, PartialEq)]
pub struct NexmarkConfig {
    /// Seed of every event's generator.
    pub seed: u64,
    /// Event-time rate, events per second (at least 1).
    pub rate: u64,
    /// Event time of event 0, ms since the epoch.
    pub base_time: i64,
    /// Kinds to emit; events of the other kinds are skipped ungenerated.
    pub kinds: Vec<NexmarkKind>,
}

impl NexmarkConfig {
    /// The kind of event `n`.
    pub fn kind_of(n: u64) -> NexmarkKind {
        match n % TOTAL_PROPORTION {
            r if r < PERSON_PROPORTION => NexmarkKind::Person,
            r if r < PERSON_PROPORTION + AUCTION_PROPORTION => NexmarkKind::Auction,
            _ => NexmarkKind::Bid,
        }
    }

    /// Whether event `n` is of a kind this stream emits.
    pub fn emits(&self, n: u64) -> bool {
        self.kinds.contains(&Self::kind_of(n))
    }

    /// Event time of event `n` in ms: `base_time + n * 1000 / rate`.
    pub fn timestamp(&self, n: u64) -> i64 {
        let offset = u128::from(n) * 1000 / u128::from(self.rate.max(1));
        self.base_time
            .saturating_add(i64::try_from(offset).unwrap_or(i64::MAX))
    }

    /// Bytes to reserve for event `n`'s JSON (see [`Self::write_event`]):
    /// 10 % or more above the longest event of its kind among the first
    /// 200,000 (person 342 bytes, auction 713, bid 172; lengths vary with
    /// `extra` and grow with the ids' digits), so that writing an event
    /// seldom reallocates.
    pub fn encoded_len_hint(n: u64) -> usize {
        match Self::kind_of(n) {
            NexmarkKind::Person => 384,
            NexmarkKind::Auction => 800,
            NexmarkKind::Bid => 192,
        }
    }

    /// Appends event `n` to `out` as one JSON object (no newline) and
    /// returns its event time in ms. The shapes (times in ms since the
    /// epoch, prices in cents):
    ///
    /// - `{"type":"person","id","name","emailAddress","creditCard","city","state","dateTime","extra"}`
    /// - `{"type":"auction","id","itemName","description","initialBid","reserve","dateTime","expires","seller","category","extra"}`
    /// - `{"type":"bid","auction","bidder","price","dateTime","extra"}`
    pub fn write_event(&self, n: u64, out: &mut Vec<u8>) -> i64 {
        let mut rng = Xoshiro256PlusPlus::seed_from_u64(
            self.seed ^ n.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15),
        );
        let time = self.timestamp(n);
        let kind = Self::kind_of(n);
        let mut json = JsonObject::new(out, kind);
        match kind {
            NexmarkKind::Person => person(n, time, &mut rng, &mut json),
            NexmarkKind::Auction => self.auction(n, time, &mut rng, &mut json),
            NexmarkKind::Bid => bid(n, time, &mut rng, &mut json),
        }
        json.close();
        time
    }

    fn auction(&self, n: u64, time: i64, rng: &mut Xoshiro256PlusPlus, json: &mut JsonObject<'_>) {
        let id = last_auction_id(n) + FIRST_AUCTION_ID;
        let seller = if rng.random_range(0..HOT_SELLER_RATIO) > 0 {
            (last_person_id(n) / HOT_BLOCK) * HOT_BLOCK
        } else {
            random_person_id(n, rng)
        } + FIRST_PERSON_ID;
        let category = FIRST_CATEGORY_ID + rng.random_range(0..NUM_CATEGORIES);
        let initial_bid = price(rng);
        // Auctions last on average until `NUM_IN_FLIGHT_AUCTIONS` more
        // auctions have been created.
        let events_ahead = NUM_IN_FLIGHT_AUCTIONS * TOTAL_PROPORTION / AUCTION_PROPORTION;
        let horizon = self.timestamp(n + events_ahead) - time;
        let expires = time + 1 + rng.random_range(0..(horizon * 2).max(1));
        json.int(key!("id"), id);
        let item_name = json.random_text(key!("itemName"), rng, 20);
        let description = json.random_text(key!("description"), rng, 100);
        json.int(key!("initialBid"), initial_bid);
        json.int(key!("reserve"), initial_bid + price(rng));
        json.int(key!("dateTime"), time);
        json.int(key!("expires"), expires);
        json.int(key!("seller"), seller);
        json.int(key!("category"), category);
        let size = 8 + item_name + description + 8 * 5;
        json.extra(rng, size, AVG_AUCTION_BYTES);
    }
}

/// Writes one flat JSON object field by field, `type` first. Every string
/// written is ASCII letters, digits, spaces, `@` and `.`, so none needs
/// escaping.
struct JsonObject<'a> {
    out: &'a mut Vec<u8>,
}

impl<'a> JsonObject<'a> {
    /// Opens the object with its `type` field: `{"type":"bid"`.
    fn new(out: &'a mut Vec<u8>, kind: NexmarkKind) -> Self {
        out.extend_from_slice(b"{\"type\":\"");
        out.extend_from_slice(kind.name().as_bytes());
        out.push(b'"');
        Self { out }
    }

    /// Starts a field: `key` is [`key!`]'s `,"name":`.
    fn name(&mut self, key: &'static str) {
        self.out.extend_from_slice(key.as_bytes());
    }

    fn int(&mut self, key: &'static str, value: impl itoa::Integer) {
        self.name(key);
        self.out
            .extend_from_slice(itoa::Buffer::new().format(value).as_bytes());
    }

    fn text(&mut self, key: &'static str, value: &str) {
        self.name(key);
        self.out.push(b'"');
        self.out.extend_from_slice(value.as_bytes());
        self.out.push(b'"');
    }

    /// A random string (see [`next_string`]); returns its length.
    fn random_text(
        &mut self,
        key: &'static str,
        rng: &mut Xoshiro256PlusPlus,
        max_len: usize,
    ) -> usize {
        self.name(key);
        self.out.push(b'"');
        let len = next_string(rng, max_len, self.out);
        self.out.push(b'"');
        len
    }

    /// The `extra` padding field (see [`next_extra`]).
    fn extra(&mut self, rng: &mut Xoshiro256PlusPlus, current: usize, average: usize) {
        self.name(key!("extra"));
        self.out.push(b'"');
        next_extra(rng, current, average, self.out);
        self.out.push(b'"');
    }

    fn close(self) {
        self.out.push(b'}');
    }
}

/// `{"type":"person","id","name","emailAddress","creditCard","city","state","dateTime","extra"}`
fn person(n: u64, time: i64, rng: &mut Xoshiro256PlusPlus, json: &mut JsonObject<'_>) {
    json.int(key!("id"), last_person_id(n) + FIRST_PERSON_ID);
    let first = FIRST_NAMES[rng.random_range(0..FIRST_NAMES.len())];
    let last = LAST_NAMES[rng.random_range(0..LAST_NAMES.len())];
    json.text(key!("name"), &format!("{first} {last}"));
    json.name(key!("emailAddress"));
    json.out.push(b'"');
    let user = next_string(rng, 7, json.out);
    json.out.push(b'@');
    let domain = next_string(rng, 5, json.out);
    json.out.extend_from_slice(b".com\"");
    let card = (0..4)
        .map(|_| format!("{:04}", rng.random_range(0..10_000)))
        .collect::<Vec<_>>()
        .join(" ");
    json.text(key!("creditCard"), &card);
    let city = US_CITIES[rng.random_range(0..US_CITIES.len())];
    let state = US_STATES[rng.random_range(0..US_STATES.len())];
    json.text(key!("city"), city);
    json.text(key!("state"), state);
    json.int(key!("dateTime"), time);
    let size = 8
        + first.len()
        + 1
        + last.len()
        + user
        + domain
        + 5
        + card.len()
        + city.len()
        + state.len();
    json.extra(rng, size, AVG_PERSON_BYTES);
}

/// `{"type":"bid","auction","bidder","price","dateTime","extra"}`
fn bid(n: u64, time: i64, rng: &mut Xoshiro256PlusPlus, json: &mut JsonObject<'_>) {
    let auction = if rng.random_range(0..HOT_AUCTION_RATIO) > 0 {
        (last_auction_id(n) / HOT_BLOCK) * HOT_BLOCK
    } else {
        random_auction_id(n, rng)
    } + FIRST_AUCTION_ID;
    // Hot bidders are the *second* person of a block, so that they are
    // not also the hot sellers.
    let bidder = if rng.random_range(0..HOT_BIDDER_RATIO) > 0 {
        (last_person_id(n) / HOT_BLOCK) * HOT_BLOCK + 1
    } else {
        random_person_id(n, rng)
    } + FIRST_PERSON_ID;
    json.int(key!("auction"), auction);
    json.int(key!("bidder"), bidder);
    json.int(key!("price"), price(rng));
    json.int(key!("dateTime"), time);
    json.extra(rng, 8 * 4, AVG_BID_BYTES);
}

/// The latest person id (base 0) at event `n`: `n`'s own if it is a person.
fn last_person_id(n: u64) -> u64 {
    let epoch = n / TOTAL_PROPORTION;
    let offset = n % TOTAL_PROPORTION;
    // An auction or a bid: the last person of this epoch.
    let offset = if offset >= PERSON_PROPORTION {
        PERSON_PROPORTION - 1
    } else {
        offset
    };
    epoch * PERSON_PROPORTION + offset
}

/// The latest auction id (base 0) at event `n`: `n`'s own if it is an
/// auction. Before the first auction this is 0 (the reference's formula
/// would go below zero; the first auction's id is what a bid names then).
fn last_auction_id(n: u64) -> u64 {
    let epoch = n / TOTAL_PROPORTION;
    let offset = n % TOTAL_PROPORTION;
    if offset < PERSON_PROPORTION {
        // A person: the last auction of the previous epoch.
        (epoch * AUCTION_PROPORTION).saturating_sub(1)
    } else if offset >= PERSON_PROPORTION + AUCTION_PROPORTION {
        // A bid: the last auction of this epoch.
        epoch * AUCTION_PROPORTION + AUCTION_PROPORTION - 1
    } else {
        epoch * AUCTION_PROPORTION + offset - PERSON_PROPORTION
    }
}

/// One of the active persons, or a few not yet created (base 0).
fn random_person_id(n: u64, rng: &mut Xoshiro256PlusPlus) -> u64 {
    let people = last_person_id(n) + 1;
    let active = people.min(NUM_ACTIVE_PEOPLE);
    people - active + rng.random_range(0..active + PERSON_ID_LEAD)
}

/// One of the auctions in flight, or a few not yet created (base 0).
fn random_auction_id(n: u64, rng: &mut Xoshiro256PlusPlus) -> u64 {
    let max = last_auction_id(n);
    let min = max.saturating_sub(NUM_IN_FLIGHT_AUCTIONS);
    min + rng.random_range(0..max - min + 1 + AUCTION_ID_LEAD)
}

/// A price in cents, log-uniform between 1.00 and 1,000,000.00.
fn price(rng: &mut Xoshiro256PlusPlus) -> u64 {
    // 10^x as e^(x ln 10): `exp` costs about a third of `powf` here.
    ((rng.random::<f64>() * 6.0 * std::f64::consts::LN_10).exp() * 100.0).round() as u64
}

/// Appends a string of 3 to `max_len - 1` characters, lower-case letters
/// with about one space in 13, trimmed; returns its length.
fn next_string(rng: &mut Xoshiro256PlusPlus, max_len: usize, out: &mut Vec<u8>) -> usize {
    const MIN_LEN: usize = 3;
    let len = MIN_LEN + rng.random_range(0..max_len - MIN_LEN);
    let start = out.len();
    for _ in 0..len {
        if rng.random_range(0..13) == 0 {
            // No leading space (trimmed) and no doubled one at the end.
            if out.len() > start {
                out.push(b' ');
            }
        } else {
            out.push(b'a' + rng.random_range(0..26u8));
        }
    }
    while out.len() > start && out.last() == Some(&b' ') {
        out.pop();
    }
    out.len() - start
}

/// Appends padding so that `current` plus it averages `average` bytes
/// (uniform within ±20 %): lower-case letters, eight per random draw.
fn next_extra(rng: &mut Xoshiro256PlusPlus, current: usize, average: usize, out: &mut Vec<u8>) {
    let Some(wanted) = average.checked_sub(current) else {
        return;
    };
    // round(wanted * 0.2) in integers: wanted / 5 never ends in .5.
    let delta = (wanted + 2) / 5;
    let len = wanted - delta
        + if delta == 0 {
            0
        } else {
            rng.random_range(0..2 * delta)
        };
    out.reserve(len);
    // Whole chunks first: a fixed-size copy compiles to one store, where a
    // copy of variable length calls memcpy.
    for _ in 0..len / 8 {
        out.extend_from_slice(&eight_letters(rng.random::<u64>()).to_le_bytes());
    }
    let rest = len % 8;
    if rest > 0 {
        let letters = eight_letters(rng.random::<u64>()).to_le_bytes();
        out.extend_from_slice(&letters[..rest]);
    }
}

/// Maps each byte `b` of `bits` to the letter `'a' + b * 26 / 256`, all
/// eight at once: the even and the odd bytes are multiplied in 16-bit
/// lanes, which cannot overflow (255 * 26 < 2^16).
fn eight_letters(bits: u64) -> u64 {
    const LOW_BYTES: u64 = 0x00FF_00FF_00FF_00FF;
    let even = (((bits & LOW_BYTES) * 26) >> 8) & LOW_BYTES;
    let odd = ((((bits >> 8) & LOW_BYTES) * 26) >> 8) & LOW_BYTES;
    (even | (odd << 8)) + 0x6161_6161_6161_6161
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> NexmarkConfig {
        NexmarkConfig {
            seed: 7,
            rate: 10_000,
            base_time: 1_000_000,
            kinds: NexmarkKind::all(),
        }
    }

    fn event(n: u64) -> serde_json::Value {
        let mut out = Vec::new();
        config().write_event(n, &mut out);
        serde_json::from_slice(&out).expect("valid JSON")
    }

    #[test]
    fn events_fit_in_their_length_hint() {
        for n in 0..200_000 {
            let mut out = Vec::new();
            config().write_event(n, &mut out);
            let hint = NexmarkConfig::encoded_len_hint(n);
            assert!(
                out.len() * 11 / 10 <= hint,
                "event {n}: {} bytes, hint {hint}",
                out.len()
            );
        }
    }

    #[test]
    fn kinds_follow_the_1_3_46_proportions() {
        let mut counts = [0u64; 3];
        for n in 0..5000 {
            counts[NexmarkConfig::kind_of(n) as usize] += 1;
        }
        assert_eq!(counts, [100, 300, 4600]);
        assert_eq!(event(0)["type"], "person");
        assert_eq!(event(1)["type"], "auction");
        assert_eq!(event(4)["type"], "bid");
    }

    #[test]
    fn events_depend_only_on_seed_and_number() {
        let mut a = Vec::new();
        let mut b = Vec::new();
        config().write_event(1234, &mut a);
        config().write_event(1234, &mut b);
        assert_eq!(a, b);
        let other = NexmarkConfig {
            seed: 8,
            ..config()
        };
        let mut c = Vec::new();
        other.write_event(1234, &mut c);
        assert_ne!(a, c);
    }

    #[test]
    fn ids_grow_with_the_event_number() {
        // Person k is event 50k; auctions 3k..3k+2 are events 50k+1..50k+3.
        assert_eq!(event(0)["id"], 1000);
        assert_eq!(event(50)["id"], 1001);
        assert_eq!(event(51)["id"], 1003);
        assert_eq!(event(53)["id"], 1005);
        // A bid names an auction created before it or at most the lead ahead.
        for n in (0..20_000).filter(|n| NexmarkConfig::kind_of(*n) == NexmarkKind::Bid) {
            let bid = event(n);
            let auction = bid["auction"].as_u64().expect("auction");
            let bidder = bid["bidder"].as_u64().expect("bidder");
            assert!(auction < FIRST_AUCTION_ID + last_auction_id(n) + 1 + AUCTION_ID_LEAD);
            assert!(bidder < FIRST_PERSON_ID + last_person_id(n) + 1 + PERSON_ID_LEAD);
        }
    }

    #[test]
    fn eight_letters_maps_every_byte_like_one_at_a_time() {
        for bits in [0u64, u64::MAX, 0x0123_4567_89AB_CDEF, 0xFF00_FF00_7F80_0102] {
            let expected: Vec<u8> = bits
                .to_le_bytes()
                .iter()
                .map(|b| b'a' + ((u16::from(*b) * 26) >> 8) as u8)
                .collect();
            assert_eq!(eight_letters(bits).to_le_bytes().to_vec(), expected);
        }
    }

    #[test]
    fn time_advances_at_the_rate() {
        let c = config();
        assert_eq!(c.timestamp(0), 1_000_000);
        assert_eq!(c.timestamp(10), 1_000_001);
        assert_eq!(c.timestamp(10_000), 1_001_000);
        assert_eq!(event(10_000)["dateTime"], 1_001_000);
    }

    #[test]
    fn about_half_the_bids_go_to_hot_auctions_and_sizes_match_the_reference() {
        let bids: Vec<(u64, serde_json::Value, usize)> = (0..50_000)
            .filter(|n| NexmarkConfig::kind_of(*n) == NexmarkKind::Bid)
            .map(|n| {
                let mut out = Vec::new();
                config().write_event(n, &mut out);
                let len = out.len();
                (n, serde_json::from_slice(&out).expect("json"), len)
            })
            .collect();
        let hot = bids
            .iter()
            .filter(|(n, b, _)| {
                b["auction"] == (last_auction_id(*n) / HOT_BLOCK) * HOT_BLOCK + FIRST_AUCTION_ID
            })
            .count() as f64
            / bids.len() as f64;
        assert!((0.48..0.56).contains(&hot), "hot share {hot}");
        let mean_extra = bids
            .iter()
            .map(|(_, b, _)| b["extra"].as_str().map_or(0, str::len))
            .sum::<usize>() as f64
            / bids.len() as f64;
        assert!((64.0..72.0).contains(&mean_extra), "extra {mean_extra}");
        let prices: Vec<u64> = bids
            .iter()
            .map(|(_, b, _)| b["price"].as_u64().expect("price"))
            .collect();
        assert!(prices.iter().all(|p| (100..=100_000_000).contains(p)));
        // Log-uniform: about a sixth of the prices in each decade.
        let below_1000 = prices.iter().filter(|p| **p < 1000).count() as f64 / prices.len() as f64;
        assert!((0.14..0.19).contains(&below_1000), "{below_1000}");
    }

    #[test]
    fn persons_and_auctions_have_the_reference_fields() {
        let p = event(50);
        for field in [
            "name",
            "emailAddress",
            "creditCard",
            "city",
            "state",
            "extra",
        ] {
            assert!(p[field].is_string(), "{field} in {p}");
        }
        assert!(US_STATES.contains(&p["state"].as_str().expect("state")));
        assert_eq!(p["creditCard"].as_str().map(str::len), Some(19));
        let a = event(52);
        let category = a["category"].as_u64().expect("category");
        assert!((10..15).contains(&category));
        assert!(a["expires"].as_i64() > a["dateTime"].as_i64());
        assert!(a["reserve"].as_u64() >= a["initialBid"].as_u64());
    }
}
