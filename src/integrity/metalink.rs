//! `GET FILE?metalink`: a Metalink 4 document (RFC 5854) that lets aria2c
//! and other Metalink clients check every piece as it downloads.

use super::{hex, FileManifest};

/// The media type of a Metalink 4 document.
pub const CONTENT_TYPE: &str = "application/metalink4+xml";

/// Escape text for XML character data and attribute values.
pub fn xml_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // XML 1.0 cannot carry other control characters at all.
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => {}
            c => out.push(c),
        }
    }
    out
}

/// The document for one file called `name`, downloadable at `url`.
pub fn render(m: &FileManifest, name: &str, url: &str) -> String {
    let mut x = String::with_capacity(256 + 80 * m.chunks.len());
    x.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    x.push_str("<metalink xmlns=\"urn:ietf:params:xml:ns:metalink\">\n");
    x.push_str(&format!("  <file name=\"{}\">\n", xml_escape(name)));
    x.push_str(&format!("    <size>{}</size>\n", m.size));
    x.push_str(&format!(
        "    <hash type=\"sha-256\">{}</hash>\n",
        hex(&m.sha256)
    ));
    x.push_str(&format!(
        "    <pieces type=\"sha-256\" length=\"{}\">\n",
        m.chunk_size
    ));
    for c in &m.chunks {
        x.push_str(&format!("      <hash>{}</hash>\n", hex(c)));
    }
    x.push_str("    </pieces>\n");
    x.push_str(&format!("    <url>{}</url>\n", xml_escape(url)));
    x.push_str("  </file>\n</metalink>\n");
    x
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_everything_that_could_break_out() {
        assert_eq!(xml_escape("a<b>&\"'\u{1}c"), "a&lt;b&gt;&amp;&quot;&apos;c");
        let m = FileManifest::compute(&[1u8; 10_000][..], 4096).unwrap();
        let doc = render(&m, "x&y.bin", "https://h/p?x=<1>");
        assert!(doc.contains("name=\"x&amp;y.bin\""));
        assert!(doc.contains("<url>https://h/p?x=&lt;1&gt;</url>"));
        assert_eq!(doc.matches("<hash>").count(), 3);
        assert!(doc.contains("length=\"4096\""));
    }
}
