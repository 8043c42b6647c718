//! Reducing an uploaded document to plain text: HTML through a WHATWG tokenizer (scripts, styles
//! and other non-content elements dropped, entities decoded), Markdown through a CommonMark
//! parser (markup dropped, link and image text kept), plain text as is. Paragraph breaks survive
//! as blank lines so chunking can cut at them.

use html5gum::{DefaultEmitter, Token, Tokenizer};
use pulldown_cmark::{Event, Parser, Tag, TagEnd};

/// The format a document was uploaded in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, utoipa::ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum Format {
    Text,
    Markdown,
    Html,
}

impl Format {
    pub fn parse(raw: &str) -> Option<Self> {
        match raw {
            "text" => Some(Format::Text),
            "markdown" => Some(Format::Markdown),
            "html" => Some(Format::Html),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Format::Text => "text",
            Format::Markdown => "markdown",
            Format::Html => "html",
        }
    }
}

/// The document's readable text, whitespace tidied, paragraphs separated by one blank line.
pub fn reduce(raw: &str, format: Format) -> String {
    let text = match format {
        Format::Text => raw.to_owned(),
        Format::Markdown => markdown_text(raw),
        Format::Html => html_text(raw),
    };
    tidy(&text)
}

/// Elements whose content is never readable text.
const SKIPPED: &[&[u8]] = &[
    b"script",
    b"style",
    b"noscript",
    b"template",
    b"svg",
    b"math",
    b"iframe",
    b"object",
    b"head",
    b"title",
    b"textarea",
    b"select",
    b"button",
];

/// Elements that start a new paragraph (or line) in the reduced text.
const BLOCKS: &[&[u8]] = &[
    b"p",
    b"div",
    b"section",
    b"article",
    b"main",
    b"header",
    b"footer",
    b"aside",
    b"nav",
    b"h1",
    b"h2",
    b"h3",
    b"h4",
    b"h5",
    b"h6",
    b"ul",
    b"ol",
    b"li",
    b"dl",
    b"dt",
    b"dd",
    b"table",
    b"tr",
    b"blockquote",
    b"pre",
    b"hr",
    b"br",
    b"figure",
    b"figcaption",
    b"address",
    b"details",
    b"summary",
    b"form",
    b"fieldset",
    b"body",
    b"html",
];

fn html_text(raw: &str) -> String {
    let mut emitter = DefaultEmitter::default();
    // Switches the tokenizer into raw-text/script states after <script>, <style> and the like,
    // so their content arrives as one string we can drop instead of as bogus tags.
    emitter.naively_switch_states(true);
    let mut out = String::with_capacity(raw.len() / 2);
    let mut skipping: Option<Vec<u8>> = None;
    for token in Tokenizer::new_with_emitter(raw, emitter).flatten() {
        match token {
            Token::StartTag(tag) => {
                let name: &[u8] = &tag.name;
                if skipping.is_some() {
                    continue;
                }
                if SKIPPED.contains(&name) && !tag.self_closing {
                    skipping = Some(name.to_vec());
                } else if BLOCKS.contains(&name) {
                    out.push_str(block_break(name));
                } else if matches!(name, b"td" | b"th") {
                    out.push(' ');
                }
            }
            Token::EndTag(tag) => {
                let name: &[u8] = &tag.name;
                match &skipping {
                    Some(open) if open.as_slice() == name => skipping = None,
                    Some(_) => {}
                    // A line-level element's start already broke the line.
                    None if BLOCKS.contains(&name) && block_break(name) != "\n" => {
                        out.push_str("\n\n")
                    }
                    None => {}
                }
            }
            Token::String(text) if skipping.is_none() => {
                out.push_str(&String::from_utf8_lossy(&text.value));
            }
            _ => {}
        }
    }
    out
}

/// Line-level elements end a line; the other blocks end a paragraph.
fn block_break(name: &[u8]) -> &'static str {
    if matches!(name, b"br" | b"li" | b"tr" | b"dt" | b"dd") {
        "\n"
    } else {
        "\n\n"
    }
}

fn markdown_text(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for event in Parser::new(raw) {
        match event {
            Event::Text(text) | Event::Code(text) => out.push_str(&text),
            Event::SoftBreak => out.push(' '),
            Event::HardBreak => out.push('\n'),
            Event::Start(Tag::Item) => out.push('\n'),
            Event::Start(Tag::TableCell) => out.push(' '),
            Event::End(
                TagEnd::Paragraph
                | TagEnd::Heading(_)
                | TagEnd::CodeBlock
                | TagEnd::BlockQuote(_)
                | TagEnd::List(_)
                | TagEnd::Table
                | TagEnd::TableRow
                | TagEnd::TableHead,
            ) => out.push_str("\n\n"),
            Event::Rule => out.push_str("\n\n"),
            // Raw HTML inside Markdown is dropped: it is markup, and may carry scripts.
            _ => {}
        }
    }
    out
}

/// Collapses runs of spaces inside lines, trims lines, and keeps at most one blank line.
fn tidy(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut blank_pending = false;
    for line in text.lines() {
        let words: Vec<&str> = line.split_whitespace().collect();
        if words.is_empty() {
            blank_pending = !out.is_empty();
            continue;
        }
        if !out.is_empty() {
            out.push_str(if blank_pending { "\n\n" } else { "\n" });
        }
        blank_pending = false;
        out.push_str(&words.join(" "));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn html_drops_scripts_and_styles_and_decodes_entities() {
        let html = "<html><head><title>T</title><style>p{color:red}</style></head><body>\
                    <h1>Returns &amp; refunds</h1><script>alert('x<p>y')</script>\
                    <p>Within <b>30</b> days.</p><noscript>enable js</noscript></body></html>";
        assert_eq!(
            reduce(html, Format::Html),
            "Returns & refunds\n\nWithin 30 days."
        );
    }

    #[test]
    fn html_keeps_list_items_on_their_own_lines() {
        let html = "<ul><li>one</li><li>two</li></ul><p>after</p>";
        assert_eq!(reduce(html, Format::Html), "one\ntwo\n\nafter");
    }

    #[test]
    fn markdown_keeps_text_and_drops_markup_and_raw_html() {
        let md = "# Shipping\n\nWe ship **worldwide** via [post](https://x.test).\n\n<script>bad()</script>\n\n- fast\n- cheap\n";
        assert_eq!(
            reduce(md, Format::Markdown),
            "Shipping\n\nWe ship worldwide via post.\n\nfast\ncheap"
        );
    }

    #[test]
    fn plain_text_is_tidied_only() {
        assert_eq!(
            reduce("  a   b \n\n\n\n c <x> ", Format::Text),
            "a b\n\nc <x>"
        );
    }
}
