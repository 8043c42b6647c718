//! Cutting a reduced document into passages: whole sentences packed up to a target size, cut at
//! paragraph and sentence boundaries, each passage repeating the last sentence or two of the one
//! before it so an answer that straddles a cut is still found whole in one passage.

/// Passages grow up to about this many characters (≈180 tokens)...
pub const TARGET_CHARS: usize = 720;
/// ...and repeat up to this many characters of the previous passage.
pub const OVERLAP_CHARS: usize = 160;
/// A sentence longer than this is cut between words.
const MAX_SEGMENT_CHARS: usize = 480;

/// One sentence (or piece of an overlong one) and whether it opens a paragraph.
struct Segment<'a> {
    text: &'a str,
    opens_paragraph: bool,
}

/// The passages of a reduced document, in order. Empty text gives no passages.
pub fn passages(text: &str) -> Vec<String> {
    let segments = segments(text);
    let mut out = Vec::new();
    let mut current: Vec<&Segment<'_>> = Vec::new();
    let mut size = 0;
    let mut fresh = 0; // segments in `current` not yet emitted in an earlier passage
    for segment in &segments {
        if size + segment.text.len() > TARGET_CHARS && fresh > 0 {
            out.push(join(&current));
            current = overlap(&current);
            size = current.iter().map(|s| s.text.len() + 1).sum();
            fresh = 0;
        }
        size += segment.text.len() + 1;
        current.push(segment);
        fresh += 1;
    }
    if fresh > 0 {
        out.push(join(&current));
    }
    out
}

/// The trailing segments of a passage that fit in the overlap, none if the last alone is larger.
fn overlap<'s, 'a>(passage: &[&'s Segment<'a>]) -> Vec<&'s Segment<'a>> {
    let mut size = 0;
    let mut start = passage.len();
    for (i, segment) in passage.iter().enumerate().rev() {
        size += segment.text.len() + 1;
        if size > OVERLAP_CHARS || i == 0 {
            break;
        }
        start = i;
    }
    passage[start..].to_vec()
}

fn join(segments: &[&Segment<'_>]) -> String {
    let mut out = String::new();
    for (i, segment) in segments.iter().enumerate() {
        if i > 0 {
            out.push_str(if segment.opens_paragraph { "\n\n" } else { " " });
        }
        out.push_str(segment.text);
    }
    out
}

fn segments(text: &str) -> Vec<Segment<'_>> {
    let mut out = Vec::new();
    for paragraph in text.split("\n\n").map(str::trim).filter(|p| !p.is_empty()) {
        let mut opens_paragraph = true;
        for sentence in sentences(paragraph) {
            for piece in split_long(sentence) {
                out.push(Segment {
                    text: piece,
                    opens_paragraph,
                });
                opens_paragraph = false;
            }
        }
    }
    out
}

/// Sentences end at `.`, `!` or `?` followed by whitespace, and at line breaks.
fn sentences(paragraph: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let bytes = paragraph.as_bytes();
    for i in 0..bytes.len() {
        let ends = match bytes[i] {
            b'\n' => Some(i),
            b'.' | b'!' | b'?' if bytes.get(i + 1).is_some_and(u8::is_ascii_whitespace) => {
                Some(i + 1)
            }
            _ => None,
        };
        if let Some(end) = ends {
            push_trimmed(&mut out, &paragraph[start..end]);
            start = end;
        }
    }
    push_trimmed(&mut out, &paragraph[start..]);
    out
}

fn push_trimmed<'a>(out: &mut Vec<&'a str>, piece: &'a str) {
    let piece = piece.trim();
    if !piece.is_empty() {
        out.push(piece);
    }
}

/// Cuts a sentence longer than the limit between words (or, for one giant word, at a char boundary).
fn split_long(sentence: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = sentence;
    while rest.len() > MAX_SEGMENT_CHARS {
        let mut cut = MAX_SEGMENT_CHARS;
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        if let Some(space) = rest[..cut].rfind(char::is_whitespace).filter(|&s| s > 0) {
            cut = space;
        }
        out.push(rest[..cut].trim());
        rest = rest[cut..].trim_start();
    }
    if !rest.is_empty() {
        out.push(rest);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_one_passage() {
        assert_eq!(passages("Hello there. Bye."), vec!["Hello there. Bye."]);
        assert!(passages("").is_empty());
    }

    #[test]
    fn long_text_is_cut_with_overlap_and_nothing_is_lost() {
        let text: Vec<String> = (0..60)
            .map(|i| format!("Sentence number {i} says something."))
            .collect();
        let text = text.join(" ");
        let parts = passages(&text);
        assert!(parts.len() > 2);
        for part in &parts {
            assert!(
                part.len() <= TARGET_CHARS + MAX_SEGMENT_CHARS,
                "{}",
                part.len()
            );
        }
        for pair in parts.windows(2) {
            let last_sentence = pair[0].rsplit(". ").next().unwrap_or_default();
            assert!(
                pair[1].contains(last_sentence),
                "no overlap between passages"
            );
        }
        for i in 0..60 {
            let needle = format!("number {i} says");
            assert!(
                parts.iter().any(|p| p.contains(&needle)),
                "lost sentence {i}"
            );
        }
    }

    #[test]
    fn a_giant_word_is_cut_at_char_boundaries() {
        let text = "é".repeat(2000);
        let parts = passages(&text);
        assert_eq!(parts.concat().replace(' ', ""), text);
    }
}
