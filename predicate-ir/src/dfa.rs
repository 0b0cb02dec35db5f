//! Building and minimizing the byte DFAs of `all`, `any` and `contains`.
//!
//! Every DFA built here is returned minimal and in *canonical numbering*:
//! states are numbered in breadth-first order from the initial state,
//! exploring bytes 0..=255 in increasing order, so the initial state is 0 and
//! two DFAs for the same language are equal as values (which is what lets
//! the lowering deduplicate scans by plain `==`).
//!
//! `contains` uses the classic subset construction over the NFA "any bytes,
//! then the pattern", with the set of live pattern positions kept as a bit
//! set (pattern length <= 64, so positions 0..=64 fit a `u128`) and all
//! sets that contain the final position merged into one absorbing accepting
//! sink: once the pattern has occurred, the scan holds whatever follows.
//! Construction works on an alphabet compressed to the distinct
//! "which pattern positions admit this byte" masks, drops positions whose
//! continuations a later position in the same set already covers, and is
//! bounded by a state budget because the subset DFA can still be
//! exponentially larger than its minimal form.

use crate::program::{Dfa, StateId};
use crate::spec::ByteClass;
use std::collections::HashMap;

/// The subset construction went past its state budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TooManyStates {
    /// The budget that was exceeded.
    pub budget: usize,
}

/// A DFA over a compressed alphabet: `symbol_of[b]` is byte `b`'s symbol.
struct SymDfa {
    symbol_of: [usize; 256],
    symbols: usize,
    /// Row-major: `next[s * symbols + sym]`.
    next: Vec<StateId>,
    accepting: Vec<bool>,
}

/// `all` over `class`: state 0 (every byte so far in the class, accepting)
/// and, unless the class is full, state 1 (failed sink).
pub fn all_dfa(class: &ByteClass) -> Dfa {
    two_state(class, true)
}

/// `any` over `class`: state 0 (no byte of the class yet) and, unless the
/// class is empty, state 1 (found one: accepting sink).
pub fn any_dfa(class: &ByteClass) -> Dfa {
    two_state(class, false)
}

fn two_state(class: &ByteClass, is_all: bool) -> Dfa {
    let mut symbol_of = [0usize; 256];
    for b in 0..=255u8 {
        // Symbol 1 moves to the sink: a byte outside the class for `all`,
        // inside it for `any`.
        symbol_of[usize::from(b)] = usize::from(class.contains(b) != is_all);
    }
    let sym = SymDfa {
        symbol_of,
        symbols: 2,
        next: vec![0, 1, 1, 1],
        accepting: vec![is_all, !is_all],
    };
    minimize(&sym)
}

/// `contains pattern` (anywhere in the bytes scanned), minimal, or
/// [`TooManyStates`] when the subset construction needs more than `budget`
/// states. `pattern` must have 1..=64 classes.
pub fn contains_dfa(pattern: &[ByteClass], budget: usize) -> Result<Dfa, TooManyStates> {
    let m = pattern.len();
    assert!(
        (1..=64).contains(&m),
        "contains_dfa: pattern length {m} outside 1..=64"
    );
    let done: u128 = 1 << m;

    // mask[b]: bit j set when byte b may stand at pattern position j.
    let mut mask_of = [0u128; 256];
    for (j, class) in pattern.iter().enumerate() {
        for &(lo, hi) in class.ranges() {
            for b in lo..=hi {
                mask_of[usize::from(b)] |= 1 << j;
            }
        }
    }
    let mut masks: Vec<u128> = Vec::new();
    let mut symbol_of = [0usize; 256];
    for b in 0..256 {
        symbol_of[b] = match masks.iter().position(|&m| m == mask_of[b]) {
            Some(i) => i,
            None => {
                masks.push(mask_of[b]);
                masks.len() - 1
            }
        };
    }
    let symbols = masks.len();

    // Position j (1 <= j < m) accepts p[j..m] followed by anything. When a
    // later position k has p[j + t] ⊆ p[k + t] for every t < m - k, every
    // continuation accepted from j is accepted from k too, so j adds nothing
    // to a set that holds k and is dropped. Sets keep their meaning (the
    // union of their positions' continuations), and patterns such as "a"
    // then twenty `any` stay at m + 1 sets instead of 2^20.
    let mut dominated_by = vec![0u128; m];
    for (j, dominators) in dominated_by.iter_mut().enumerate().skip(1) {
        for k in j + 1..m {
            let covered = (0..m - k).all(|t| is_subset(&pattern[j + t], &pattern[k + t]));
            if covered {
                *dominators |= 1 << k;
            }
        }
    }
    let reduce = |set: u128| -> u128 {
        let mut out = set;
        for (j, &dominators) in dominated_by.iter().enumerate().skip(1) {
            if set & (1 << j) != 0 && set & dominators != 0 {
                out &= !(1 << j);
            }
        }
        out
    };

    // States are sets of positions reached (bit j: the last j bytes matched
    // the pattern's first j classes); bit 0 is always set ("any bytes").
    let mut index: HashMap<u128, StateId> = HashMap::new();
    let mut sets: Vec<u128> = vec![1];
    index.insert(1, 0);
    let mut next: Vec<StateId> = Vec::new();
    let mut s = 0;
    while s < sets.len() {
        let set = sets[s];
        for &mask in &masks {
            let target = if set == done {
                done
            } else {
                let t = ((set & mask) << 1) | 1;
                if t & done != 0 {
                    done
                } else {
                    reduce(t)
                }
            };
            let id = match index.get(&target) {
                Some(&id) => id,
                None => {
                    if sets.len() >= budget {
                        return Err(TooManyStates { budget });
                    }
                    let id = sets.len() as StateId;
                    sets.push(target);
                    index.insert(target, id);
                    id
                }
            };
            next.push(id);
        }
        s += 1;
    }
    let accepting = sets.iter().map(|&set| set == done).collect();
    Ok(minimize(&SymDfa {
        symbol_of,
        symbols,
        next,
        accepting,
    }))
}

/// Every byte of `a` is in `b`.
fn is_subset(a: &ByteClass, b: &ByteClass) -> bool {
    a.ranges()
        .iter()
        .all(|&(lo, hi)| b.ranges().iter().any(|&(l, h)| l <= lo && hi <= h))
}

/// Minimizes a full byte DFA and renumbers it canonically.
pub fn minimize_dfa(dfa: &Dfa) -> Dfa {
    // Compress the alphabet: bytes whose columns agree in every state.
    let mut symbol_of = [0usize; 256];
    let mut reps: Vec<usize> = Vec::new();
    for b in 0..256 {
        let same = reps
            .iter()
            .position(|&r| dfa.next.iter().all(|row| row[r] == row[b]));
        symbol_of[b] = match same {
            Some(i) => i,
            None => {
                reps.push(b);
                reps.len() - 1
            }
        };
    }
    let next = dfa
        .next
        .iter()
        .flat_map(|row| reps.iter().map(move |&r| row[r]))
        .collect();
    minimize(&SymDfa {
        symbol_of,
        symbols: reps.len(),
        next,
        accepting: dfa.accepting.clone(),
    })
}

/// Moore's partition refinement on the states reachable from 0, then the
/// quotient in canonical numbering, expanded back to 256 columns.
fn minimize(d: &SymDfa) -> Dfa {
    let k = d.symbols;
    let step = |s: usize, sym: usize| d.next[s * k + sym] as usize;

    // Reachable states, in discovery order.
    let total = d.accepting.len();
    let mut seen = vec![false; total];
    let mut reachable = vec![0usize];
    seen[0] = true;
    let mut i = 0;
    while i < reachable.len() {
        let s = reachable[i];
        for sym in 0..k {
            let t = step(s, sym);
            if !seen[t] {
                seen[t] = true;
                reachable.push(t);
            }
        }
        i += 1;
    }

    // block[s]: the equivalence block of reachable state s.
    let mut block = vec![usize::MAX; total];
    for &s in &reachable {
        block[s] = usize::from(d.accepting[s]);
    }
    let mut blocks = {
        let mut kinds: Vec<usize> = reachable.iter().map(|&s| block[s]).collect();
        kinds.sort_unstable();
        kinds.dedup();
        kinds.len()
    };
    loop {
        let mut ids: HashMap<Vec<usize>, usize> = HashMap::new();
        let mut refined = vec![usize::MAX; total];
        for &s in &reachable {
            let mut signature = Vec::with_capacity(k + 1);
            signature.push(block[s]);
            signature.extend((0..k).map(|sym| block[step(s, sym)]));
            let fresh = ids.len();
            refined[s] = *ids.entry(signature).or_insert(fresh);
        }
        let count = ids.len();
        block = refined;
        if count == blocks {
            break;
        }
        blocks = count;
    }

    // Canonical numbering: breadth-first from the initial block, bytes in order.
    let mut first_of_block = vec![usize::MAX; blocks];
    for &s in reachable.iter().rev() {
        first_of_block[block[s]] = s;
    }
    let mut number: HashMap<usize, StateId> = HashMap::new();
    let mut order: Vec<usize> = vec![block[0]];
    number.insert(block[0], 0);
    let mut out_next: Vec<[StateId; 256]> = Vec::new();
    let mut out_accepting = Vec::new();
    let mut i = 0;
    while i < order.len() {
        let rep = first_of_block[order[i]];
        let mut row = [0 as StateId; 256];
        for (b, slot) in row.iter_mut().enumerate() {
            let target_block = block[step(rep, d.symbol_of[b])];
            let fresh = order.len() as StateId;
            let id = *number.entry(target_block).or_insert_with(|| {
                order.push(target_block);
                fresh
            });
            *slot = id;
        }
        out_next.push(row);
        out_accepting.push(d.accepting[rep]);
        i += 1;
    }
    Dfa {
        next: out_next,
        accepting: out_accepting,
    }
}

impl Dfa {
    /// The bytes partitioned by behaviour: two bytes are in the same class
    /// when every state moves the same way on both. Classes are listed by
    /// their smallest byte. An emitter can test a class instead of a byte.
    pub fn byte_classes(&self) -> Vec<ByteClass> {
        let mut reps: Vec<(u8, Vec<u8>)> = Vec::new();
        for b in 0..=255u8 {
            let col = usize::from(b);
            match reps
                .iter_mut()
                .find(|(r, _)| self.next.iter().all(|row| row[usize::from(*r)] == row[col]))
            {
                Some((_, members)) => members.push(b),
                None => reps.push((b, vec![b])),
            }
        }
        reps.into_iter()
            .map(|(_, members)| ByteClass::from_bytes(members))
            .collect()
    }

    /// Runs the DFA from `state` over `bytes`.
    pub fn run(&self, state: StateId, bytes: &[u8]) -> StateId {
        bytes
            .iter()
            .fold(state, |s, &b| self.next[s as usize][usize::from(b)])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_state_machines() {
        let digits = ByteClass::from_ranges([(b'0', b'9')]);
        let all = all_dfa(&digits);
        assert_eq!(all.accepting, vec![true, false]);
        assert_eq!(all.run(0, b"0123"), 0);
        assert_eq!(all.run(0, b"01x3"), 1);
        let any = any_dfa(&digits);
        assert_eq!(any.accepting, vec![false, true]);
        assert_eq!(any.run(0, b"ab7c"), 1);
        // Degenerate classes collapse to one state.
        assert_eq!(all_dfa(&ByteClass::full()).next.len(), 1);
        assert_eq!(any_dfa(&ByteClass::empty()).next.len(), 1);
        assert!(!any_dfa(&ByteClass::empty()).accepting[0]);
    }

    #[test]
    fn contains_follows_overlapping_prefixes() {
        let word: Vec<ByteClass> = b"abab"
            .iter()
            .map(|&b| ByteClass::from_bytes([b]))
            .collect();
        let dfa = contains_dfa(&word, 100).unwrap();
        assert_eq!(dfa.next.len(), 5);
        assert!(dfa.accepting[dfa.run(0, b"aabababx") as usize]);
        assert!(!dfa.accepting[dfa.run(0, b"abaab") as usize]);
        // "aba" then "b" completes; after the match everything is accepted.
        let mid = dfa.run(0, b"aba");
        assert!(dfa.accepting[dfa.run(mid, b"b\xff\x00") as usize]);
        assert_eq!(contains_dfa(&word, 3), Err(TooManyStates { budget: 3 }));
    }

    #[test]
    fn byte_classes_partition_by_behaviour() {
        let word: Vec<ByteClass> =
            vec![ByteClass::from_bytes(*b"hH"), ByteClass::from_bytes(*b"i")];
        let dfa = contains_dfa(&word, 100).unwrap();
        let classes = dfa.byte_classes();
        assert_eq!(classes.len(), 3);
        assert!(classes.contains(&ByteClass::from_bytes(*b"hH")));
        assert!(classes.contains(&ByteClass::from_bytes(*b"i")));
        assert_eq!(classes.iter().map(ByteClass::len).sum::<usize>(), 256);
    }

    #[test]
    fn minimize_merges_equivalent_states_and_drops_unreachable_ones() {
        // States 1 and 2 both accept everything forever; state 3 is unreachable.
        let mut next = vec![[0 as StateId; 256]; 4];
        next[0][usize::from(b'a')] = 1;
        next[0][usize::from(b'b')] = 2;
        next[1] = [1; 256];
        next[2] = [2; 256];
        next[3] = [0; 256];
        let dfa = Dfa {
            next,
            accepting: vec![false, true, true, false],
        };
        let min = minimize_dfa(&dfa);
        assert_eq!(min.next.len(), 2);
        assert_eq!(min.next[0][usize::from(b'a')], 1);
        assert_eq!(min.next[0][usize::from(b'b')], 1);
        assert_eq!(min.accepting, vec![false, true]);
    }
}
