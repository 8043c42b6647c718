//! Deterministic message text for the benchmarks: ordinary words, so full-text indexing does
//! realistic work, without a random-number dependency.

const WORDS: [&str; 32] = [
    "order",
    "delivery",
    "refund",
    "account",
    "password",
    "invoice",
    "shipping",
    "warranty",
    "return",
    "size",
    "colour",
    "price",
    "discount",
    "store",
    "opening",
    "hours",
    "contact",
    "support",
    "question",
    "answer",
    "product",
    "available",
    "tomorrow",
    "weekend",
    "please",
    "thanks",
    "help",
    "change",
    "address",
    "payment",
    "card",
    "tracking",
];

/// About 40 words (≈ 300 bytes) chosen from `seed`.
pub fn message(seed: u64) -> String {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = String::with_capacity(320);
    for i in 0..40 {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        if i > 0 {
            out.push(' ');
        }
        out.push_str(WORDS[(state % WORDS.len() as u64) as usize]);
    }
    out
}
