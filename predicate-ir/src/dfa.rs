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

/// Why [`some_pattern_dfa`] gave up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CombineError {
    /// The subset construction went past its state budget.
    Construction(TooManyStates),
    /// The minimal DFA has `states` states, more than the limit asked for.
    TooLarge {
        /// States of the minimal DFA.
        states: usize,
    },
}

/// "Some pattern of `patterns` occurs" (each anywhere in the bytes scanned),
/// as one minimal DFA: an Aho-Corasick-style automaton over byte classes,
/// built by the subset construction over the union of the patterns' NFAs,
/// with every set in which a pattern has completed merged into one
/// accepting sink. The bytes are read once whatever the number of patterns.
///
/// Fails with [`CombineError::Construction`] when the construction needs
/// more than `budget` states, and with [`CombineError::TooLarge`] (giving
/// the exact count) when the minimal DFA has more than `max_states`; the
/// 256-column form is only built within that limit. Every pattern must
/// have 1..=64 classes. `some_pattern_dfa(&[p], ..)` equals
/// `contains_dfa(p, ..)`.
pub fn some_pattern_dfa(
    patterns: &[&[ByteClass]],
    budget: usize,
    max_states: usize,
) -> Result<Dfa, CombineError> {
    assert!(!patterns.is_empty(), "some_pattern_dfa: no pattern");
    for pattern in patterns {
        let m = pattern.len();
        assert!(
            (1..=64).contains(&m),
            "some_pattern_dfa: pattern length {m} outside 1..=64"
        );
    }
    let alphabet = Alphabet::of(patterns);
    // Two constructions of the same language, hence the same minimal DFA:
    // over a trie of the patterns (shared prefixes are one NFA state, so a
    // block list of thousands of words stays near its trie's size), or, when
    // that explores too many sets, over each pattern's positions with
    // covered positions dropped (which tames wide classes, as in
    // `contains_dfa`).
    // The second only helps lists of few, short patterns with wide classes:
    // on a long list it explores sets of thousands of positions and would
    // take minutes to fail in its turn.
    let positions: usize = patterns.iter().map(|p| p.len()).sum();
    let built = match trie_subsets(patterns, &alphabet, budget) {
        Ok(d) => d,
        Err(too_many) if positions > MAX_POSITION_FALLBACK => {
            return Err(CombineError::Construction(too_many))
        }
        Err(too_many) => position_subsets(patterns, &alphabet, budget)
            .ok_or(CombineError::Construction(too_many))?,
    };
    let minimal = minimize_sym(&built);
    if minimal.accepting.len() > max_states {
        return Err(CombineError::TooLarge {
            states: minimal.accepting.len(),
        });
    }
    Ok(expand(&minimal))
}

/// Most pattern positions (classes, summed over the patterns) for which
/// [`some_pattern_dfa`] retries a failed trie construction over positions.
const MAX_POSITION_FALLBACK: usize = 4_096;

/// The alphabet of a set of patterns: bytes that every class of every
/// pattern treats alike (regex engines call these byte classes).
struct Alphabet<'a> {
    symbol_of: [usize; 256],
    symbols: usize,
    /// Distinct classes, and the index of each.
    class_ids: HashMap<&'a ByteClass, usize>,
    /// `admits[class][symbol]`.
    admits: Vec<Vec<bool>>,
}

impl<'a> Alphabet<'a> {
    fn of(patterns: &[&'a [ByteClass]]) -> Self {
        // Distinct classes first: a case-insensitive block list of
        // thousands of words has a few dozen.
        let mut class_ids: HashMap<&ByteClass, usize> = HashMap::new();
        let mut classes: Vec<&ByteClass> = Vec::new();
        for pattern in patterns {
            for class in pattern.iter() {
                class_ids.entry(class).or_insert_with(|| {
                    classes.push(class);
                    classes.len() - 1
                });
            }
        }
        let mut signatures: HashMap<Vec<bool>, usize> = HashMap::new();
        let mut symbol_of = [0usize; 256];
        let mut representative: Vec<u8> = Vec::new();
        for b in 0..=255u8 {
            let signature: Vec<bool> = classes.iter().map(|c| c.contains(b)).collect();
            let fresh = signatures.len();
            symbol_of[usize::from(b)] = *signatures.entry(signature).or_insert_with(|| {
                representative.push(b);
                fresh
            });
        }
        let admits = classes
            .iter()
            .map(|c| representative.iter().map(|&b| c.contains(b)).collect())
            .collect();
        Alphabet {
            symbol_of,
            symbols: representative.len(),
            class_ids,
            admits,
        }
    }

    fn class(&self, class: &ByteClass) -> usize {
        self.class_ids[class]
    }
}

/// Interns subsets (sorted lists of NFA states; `[DONE]` is the accepting
/// sink) as DFA states, within a budget.
struct Subsets {
    index: HashMap<Vec<u32>, StateId>,
    sets: Vec<Vec<u32>>,
    budget: usize,
}

/// The accepting sink's subset marker.
const DONE: u32 = u32::MAX;

impl Subsets {
    fn new(budget: usize) -> Self {
        let mut index = HashMap::new();
        index.insert(Vec::new(), 0);
        Subsets {
            index,
            sets: vec![Vec::new()],
            budget,
        }
    }

    fn id(&mut self, key: &[u32]) -> Result<StateId, TooManyStates> {
        if let Some(&id) = self.index.get(key) {
            return Ok(id);
        }
        if self.sets.len() >= self.budget {
            return Err(TooManyStates {
                budget: self.budget,
            });
        }
        let id = self.sets.len() as StateId;
        self.sets.push(key.to_vec());
        self.index.insert(key.to_vec(), id);
        Ok(id)
    }

    fn accepting(&self) -> Vec<bool> {
        self.sets
            .iter()
            .map(|set| set.first() == Some(&DONE))
            .collect()
    }
}

/// The subset construction over a trie of the patterns: NFA state = trie
/// node (the root, "any bytes so far", is implicit in every set); reaching
/// a node where a pattern ends is the accepting sink.
fn trie_subsets(
    patterns: &[&[ByteClass]],
    alphabet: &Alphabet,
    budget: usize,
) -> Result<SymDfa, TooManyStates> {
    // children[node]: (class, child); node 0 is the root.
    let mut children: Vec<Vec<(u32, u32)>> = vec![Vec::new()];
    let mut ends = vec![false];
    let mut edge: HashMap<(u32, u32), u32> = HashMap::new();
    for pattern in patterns {
        let mut node = 0u32;
        for class in pattern.iter() {
            if ends[node as usize] {
                break; // a shorter pattern already ends here: the rest never matters
            }
            let c = alphabet.class(class) as u32;
            node = *edge.entry((node, c)).or_insert_with(|| {
                children.push(Vec::new());
                ends.push(false);
                let child = (children.len() - 1) as u32;
                children[node as usize].push((c, child));
                child
            });
        }
        ends[node as usize] = true;
    }
    let symbols = alphabet.symbols;
    // root_moves[sym]: the root's children admitting the symbol.
    let root_moves: Vec<Vec<u32>> = (0..symbols)
        .map(|sym| {
            children[0]
                .iter()
                .filter(|&&(c, _)| alphabet.admits[c as usize][sym])
                .map(|&(_, child)| child)
                .collect()
        })
        .collect();
    let mut subsets = Subsets::new(budget);
    let mut next: Vec<StateId> = Vec::new();
    let mut target: Vec<u32> = Vec::new();
    let done_key = [DONE];
    let mut s = 0;
    while s < subsets.sets.len() {
        for (sym, root_targets) in root_moves.iter().enumerate() {
            let set = &subsets.sets[s];
            target.clear();
            let mut done = set.first() == Some(&DONE);
            if !done {
                for &node in set {
                    for &(c, child) in &children[node as usize] {
                        if alphabet.admits[c as usize][sym] {
                            if ends[child as usize] {
                                done = true;
                            }
                            target.push(child);
                        }
                    }
                }
                for &child in root_targets {
                    if ends[child as usize] {
                        done = true;
                    }
                    target.push(child);
                }
            }
            let id = if done {
                subsets.id(&done_key)?
            } else {
                target.sort_unstable();
                target.dedup();
                subsets.id(&target)?
            };
            next.push(id);
        }
        s += 1;
    }
    Ok(SymDfa {
        symbol_of: alphabet.symbol_of,
        symbols,
        next,
        accepting: subsets.accepting(),
    })
}

/// The subset construction over each pattern's positions, dropping covered
/// positions; None when it too explores more than `budget` sets.
fn position_subsets(
    patterns: &[&[ByteClass]],
    alphabet: &Alphabet,
    budget: usize,
) -> Option<SymDfa> {
    // NFA positions: (pattern p, j classes matched) for 1 <= j < m_p, numbered
    // `first[p] + j - 1`; position 0 ("any bytes so far") is implicit in
    // every set, and j = m_p means the pattern occurred.
    let mut first = Vec::with_capacity(patterns.len());
    let mut owner: Vec<(u32, u32)> = Vec::new();
    for (p, pattern) in patterns.iter().enumerate() {
        first.push(owner.len() as u32);
        owner.extend((1..pattern.len()).map(|j| (p as u32, j as u32)));
    }
    let symbols = alphabet.symbols;
    let class_at = |p: usize, j: usize| alphabet.class(&patterns[p][j]);
    // starters[sym]: patterns whose first class admits the symbol.
    let starters: Vec<Vec<u32>> = (0..symbols)
        .map(|sym| {
            (0..patterns.len())
                .filter(|&p| alphabet.admits[class_at(p, 0)][sym])
                .map(|p| p as u32)
                .collect()
        })
        .collect();

    // As in `contains_dfa`: within one pattern, position j is dropped from
    // a set holding a later position k whose continuations cover j's
    // (every accepted continuation from j completes the pattern from k, and
    // earlier), so wide classes do not blow the construction up.
    let dominated_by: Vec<Vec<u128>> = patterns
        .iter()
        .map(|pattern| {
            let m = pattern.len();
            let mut out = vec![0u128; m];
            for (j, dominators) in out.iter_mut().enumerate().skip(1) {
                for k in j + 1..m {
                    if (0..m - k).all(|t| is_subset(&pattern[j + t], &pattern[k + t])) {
                        *dominators |= 1 << k;
                    }
                }
            }
            out
        })
        .collect();

    let mut subsets = Subsets::new(budget);
    let done_key = [DONE];
    let mut next: Vec<StateId> = Vec::new();
    let mut target: Vec<u32> = Vec::new();
    let mut s = 0;
    while s < subsets.sets.len() {
        for (sym, starting) in starters.iter().enumerate() {
            let set = &subsets.sets[s];
            target.clear();
            let mut done = set.first() == Some(&DONE);
            if !done {
                for &pos in set {
                    let (p, j) = owner[pos as usize];
                    let (p, j) = (p as usize, j as usize);
                    if alphabet.admits[class_at(p, j)][sym] {
                        if j + 1 == patterns[p].len() {
                            done = true;
                            break;
                        }
                        target.push(pos + 1);
                    }
                }
            }
            if !done {
                for &p in starting {
                    if patterns[p as usize].len() == 1 {
                        done = true;
                        break;
                    }
                    target.push(first[p as usize]);
                }
            }
            let id = if done {
                subsets.id(&done_key).ok()?
            } else {
                target.sort_unstable();
                target.dedup();
                reduce_dominated(&mut target, &owner, &first, &dominated_by);
                subsets.id(&target).ok()?
            };
            next.push(id);
        }
        s += 1;
    }
    Some(SymDfa {
        symbol_of: alphabet.symbol_of,
        symbols,
        next,
        accepting: subsets.accepting(),
    })
}

/// Drops from the sorted position list `set` every position that a later
/// position of the same pattern in `set` dominates.
fn reduce_dominated(
    set: &mut Vec<u32>,
    owner: &[(u32, u32)],
    first: &[u32],
    dominated_by: &[Vec<u128>],
) {
    // Positions of one pattern are contiguous in the numbering, so one
    // pattern's positions form a run of the sorted list.
    let mut out = 0;
    let mut i = 0;
    while i < set.len() {
        let p = owner[set[i] as usize].0 as usize;
        let mut end = i;
        let mut present: u128 = 0;
        while end < set.len() && owner[set[end] as usize].0 as usize == p {
            present |= 1 << (set[end] - first[p] + 1);
            end += 1;
        }
        for t in i..end {
            let j = (set[t] - first[p] + 1) as usize;
            if dominated_by[p][j] & present == 0 {
                set[out] = set[t];
                out += 1;
            }
        }
        i = end;
    }
    set.truncate(out);
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
    expand(&minimize_sym(d))
}

/// The minimal DFA of `d`, still over `d`'s symbols, in canonical numbering
/// (breadth-first from the initial state, symbols in the order of their
/// smallest byte, which visits states exactly as bytes 0..=255 in order do).
fn minimize_sym(d: &SymDfa) -> SymDfa {
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
    let mut signature = Vec::with_capacity(k + 1);
    loop {
        let mut ids: HashMap<Vec<usize>, usize> = HashMap::with_capacity(blocks * 2);
        let mut refined = vec![usize::MAX; total];
        for &s in &reachable {
            signature.clear();
            signature.push(block[s]);
            signature.extend((0..k).map(|sym| block[step(s, sym)]));
            let fresh = ids.len();
            refined[s] = match ids.get(&signature) {
                Some(&id) => id,
                None => {
                    ids.insert(signature.clone(), fresh);
                    fresh
                }
            };
        }
        let count = ids.len();
        block = refined;
        if count == blocks {
            break;
        }
        blocks = count;
    }

    // Symbols in the order of their smallest byte.
    let mut symbol_order: Vec<usize> = Vec::with_capacity(k);
    let mut listed = vec![false; k];
    for &sym in &d.symbol_of {
        if !listed[sym] {
            listed[sym] = true;
            symbol_order.push(sym);
        }
    }

    // Canonical numbering: breadth-first from the initial block.
    let mut first_of_block = vec![usize::MAX; blocks];
    for &s in reachable.iter().rev() {
        first_of_block[block[s]] = s;
    }
    let mut number: Vec<StateId> = vec![StateId::MAX; blocks];
    let mut order: Vec<usize> = vec![block[0]];
    number[block[0]] = 0;
    let mut out_next: Vec<StateId> = vec![0; blocks * k];
    let mut out_accepting = Vec::with_capacity(blocks);
    let mut i = 0;
    while i < order.len() {
        let rep = first_of_block[order[i]];
        for &sym in &symbol_order {
            let target_block = block[step(rep, sym)];
            if number[target_block] == StateId::MAX {
                number[target_block] = order.len() as StateId;
                order.push(target_block);
            }
            out_next[i * k + sym] = number[target_block];
        }
        out_accepting.push(d.accepting[rep]);
        i += 1;
    }
    SymDfa {
        symbol_of: d.symbol_of,
        symbols: k,
        next: out_next,
        accepting: out_accepting,
    }
}

/// A symbol DFA as a full byte DFA (256 columns per state).
fn expand(d: &SymDfa) -> Dfa {
    let k = d.symbols;
    let next = (0..d.accepting.len())
        .map(|s| {
            let mut row = [0 as StateId; 256];
            for (b, slot) in row.iter_mut().enumerate() {
                *slot = d.next[s * k + d.symbol_of[b]];
            }
            row
        })
        .collect();
    Dfa {
        next,
        accepting: d.accepting.clone(),
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
    fn one_pattern_combined_equals_contains() {
        let patterns: Vec<Vec<ByteClass>> = vec![
            b"abab"
                .iter()
                .map(|&b| ByteClass::from_bytes([b]))
                .collect(),
            vec![ByteClass::from_bytes(*b"hH"), ByteClass::from_bytes(*b"iI")],
            {
                let mut p = vec![ByteClass::from_bytes(*b"a")];
                p.extend(vec![ByteClass::full(); 20]);
                p
            },
            vec![ByteClass::text()],
        ];
        for p in &patterns {
            assert_eq!(
                some_pattern_dfa(&[p.as_slice()], 10_000, 512),
                Ok(contains_dfa(p, 10_000).unwrap())
            );
        }
    }

    #[test]
    fn combined_patterns_accept_when_some_pattern_occurs() {
        // Overlapping words, a word that is a prefix of another, one that is
        // a suffix of another, case-insensitive classes.
        let words: [&[u8]; 5] = [b"he", b"she", b"hers", b"his", b"sh"];
        let patterns: Vec<Vec<ByteClass>> = words
            .iter()
            .map(|w| {
                w.iter()
                    .map(|&b| ByteClass::from_bytes([b, b.to_ascii_uppercase()]))
                    .collect()
            })
            .collect();
        let slices: Vec<&[ByteClass]> = patterns.iter().map(Vec::as_slice).collect();
        let dfa = some_pattern_dfa(&slices, 10_000, 512).unwrap();
        // Every string over a small alphabet up to length 6.
        let alphabet = b"hesriHSx";
        let mut strings: Vec<Vec<u8>> = vec![Vec::new()];
        for _ in 0..5 {
            let longer: Vec<Vec<u8>> = strings
                .iter()
                .filter(|s| s.len() == strings.last().unwrap().len())
                .flat_map(|s| {
                    alphabet.iter().map(move |&b| {
                        let mut t = s.clone();
                        t.push(b);
                        t
                    })
                })
                .collect();
            strings.extend(longer);
        }
        for s in &strings {
            let lower = s.to_ascii_lowercase();
            let expected = words
                .iter()
                .any(|w| lower.windows(w.len()).any(|x| x == *w));
            assert_eq!(dfa.accepting[dfa.run(0, s) as usize], expected, "{s:?}");
        }
        // Too small a limit gives the exact count; too small a budget fails.
        let states = dfa.next.len();
        assert_eq!(
            some_pattern_dfa(&slices, 10_000, states - 1),
            Err(CombineError::TooLarge { states })
        );
        assert_eq!(
            some_pattern_dfa(&slices, 3, 512),
            Err(CombineError::Construction(TooManyStates { budget: 3 }))
        );
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
