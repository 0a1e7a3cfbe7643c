//! Nexmark query 3, local item suggestion: who sells in a given category
//! from one of a few US states. An inner join of persons and auctions on
//! `person.id = auction.seller`, for auctions of `category` (10) and
//! persons living in `states` (OR, ID, CA), emitting
//! `{"name","city","state","id"}` (`id` is the auction's).
//!
//! Read persons keyed by `id` and auctions keyed by `seller` (both inputs
//! of this operator, `partition: key_by`). The join is unwindowed, as in
//! the Nexmark suite: the seller's details wait in value state for later
//! auctions, and auctions that arrive before their seller wait in list
//! state, so each match is emitted exactly once whatever the arrival order.

use weir_guest::prelude::*;

/// Operator configuration (`config:` in the job file).
#[derive(Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Config {
    /// The auction category to suggest from.
    category: u64,
    /// The sellers' states.
    states: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            category: 10,
            states: vec!["OR".into(), "ID".into(), "CA".into()],
        }
    }
}

/// The fields of the Nexmark events this query reads.
#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
enum Event {
    Person {
        name: String,
        city: String,
        state: String,
    },
    Auction {
        id: u64,
        category: u64,
    },
    Bid {},
}

/// A seller, once their person record has arrived.
#[derive(Serialize, Deserialize)]
struct Seller {
    name: String,
    city: String,
    state: String,
    /// Lives in one of the configured states.
    local: bool,
}

/// One suggestion.
#[derive(Serialize)]
struct Suggestion {
    name: String,
    city: String,
    state: String,
    id: u64,
}

struct LocalItemSuggestion {
    config: Config,
    seller: ValueState<Seller>,
    /// Auction ids of the category whose seller has not arrived yet.
    waiting: ListState<u64>,
}

impl LocalItemSuggestion {
    fn suggest(seller: &Seller, auction: u64, out: &mut Collector<'_, Suggestion>) {
        out.emit(Suggestion {
            name: seller.name.clone(),
            city: seller.city.clone(),
            state: seller.state.clone(),
            id: auction,
        });
    }
}

impl KeyedProcessFunction for LocalItemSuggestion {
    type Config = Config;
    type In<'a> = Event;
    type Out = Suggestion;

    fn open(config: Config, _ctx: &OpenContext) -> Result<Self, String> {
        Ok(Self {
            config,
            seller: ValueState::new("seller"),
            waiting: ListState::new("waiting-auctions"),
        })
    }

    fn process(
        &mut self,
        _key: &[u8],
        event: Event,
        out: &mut Collector<'_, Suggestion>,
    ) -> Result<(), String> {
        match event {
            Event::Person { name, city, state } => {
                let seller = Seller {
                    local: self.config.states.contains(&state),
                    name,
                    city,
                    state,
                };
                if seller.local {
                    for auction in self.waiting.get()? {
                        Self::suggest(&seller, auction, out);
                    }
                }
                self.waiting.clear();
                self.seller.set(&seller);
            }
            Event::Auction { id, category } if category == self.config.category => {
                match self.seller.get()? {
                    Some(seller) if seller.local => Self::suggest(&seller, id, out),
                    Some(_) => {}
                    None => self.waiting.add(&id),
                }
            }
            Event::Auction { .. } => {}
            Event::Bid {} => return Err("bids are not an input of query 3".into()),
        }
        Ok(())
    }
}

weir_guest::export!(keyed_process LocalItemSuggestion);
