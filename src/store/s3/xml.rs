//! Just enough XML for S3's answers: elements, text and the five entities
//! (and numeric references); attributes, comments and declarations are
//! skipped. S3, MinIO, Ceph and moto all write plain documents of this
//! kind.

/// An element: its name (without namespace prefix), its text and children.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Element {
    pub name: String,
    pub text: String,
    pub children: Vec<Element>,
}

impl Element {
    /// The first child named `name`.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// Every child named `name`.
    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> + 'a {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// The text of the first child named `name`.
    pub fn text_of(&self, name: &str) -> Option<&str> {
        self.child(name).map(|c| c.text.as_str())
    }
}

/// Parses a document into its root element.
pub fn parse(doc: &str) -> Result<Element, String> {
    let mut p = Parser {
        s: doc.as_bytes(),
        i: 0,
    };
    p.skip_prolog();
    let root = p.element()?;
    Ok(root)
}

/// Escapes text for an element's content.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn rest(&self) -> &[u8] {
        &self.s[self.i..]
    }

    fn skip_ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }

    /// Skips `<?...?>`, `<!...>` and whitespace before the root.
    fn skip_prolog(&mut self) {
        loop {
            self.skip_ws();
            if self.rest().starts_with(b"<?") || self.rest().starts_with(b"<!") {
                self.skip_markup();
            } else {
                return;
            }
        }
    }

    fn skip_markup(&mut self) {
        let end: &[u8] = if self.rest().starts_with(b"<!--") {
            b"-->"
        } else if self.rest().starts_with(b"<?") {
            b"?>"
        } else {
            b">"
        };
        match find(self.rest(), end) {
            Some(n) => self.i += n + end.len(),
            None => self.i = self.s.len(),
        }
    }

    fn element(&mut self) -> Result<Element, String> {
        if !self.rest().starts_with(b"<") {
            return Err(format!("expected an element at byte {}", self.i));
        }
        let close = find(self.rest(), b">").ok_or("unterminated tag")?;
        let tag = std::str::from_utf8(&self.rest()[1..close])
            .map_err(|e| e.to_string())?
            .to_string();
        self.i += close + 1;
        let empty = tag.ends_with('/');
        let tag = tag.trim_end_matches('/');
        let qname = tag.split_whitespace().next().unwrap_or("");
        let name = qname.rsplit(':').next().unwrap_or(qname).to_string();
        let mut el = Element {
            name,
            ..Element::default()
        };
        if empty {
            return Ok(el);
        }
        let mut text = String::new();
        loop {
            if self.i >= self.s.len() {
                return Err(format!("`{}` is not closed", el.name));
            }
            if self.rest().starts_with(b"</") {
                let close = find(self.rest(), b">").ok_or("unterminated end tag")?;
                self.i += close + 1;
                break;
            }
            if self.rest().starts_with(b"<![CDATA[") {
                let end = find(self.rest(), b"]]>").ok_or("unterminated CDATA")?;
                text.push_str(&String::from_utf8_lossy(&self.rest()[9..end]));
                self.i += end + 3;
            } else if self.rest().starts_with(b"<!") || self.rest().starts_with(b"<?") {
                self.skip_markup();
            } else if self.rest().starts_with(b"<") {
                el.children.push(self.element()?);
            } else {
                let end = self
                    .rest()
                    .iter()
                    .position(|b| *b == b'<')
                    .unwrap_or(self.rest().len());
                let raw = std::str::from_utf8(&self.rest()[..end]).map_err(|e| e.to_string())?;
                let raw = unescape(raw)?;
                text.push_str(&raw);
                self.i += end;
            }
        }
        el.text = if el.children.is_empty() {
            text
        } else {
            text.trim().to_string()
        };
        Ok(el)
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn unescape(s: &str) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let end = rest[i..].find(';').ok_or("unterminated entity")? + i;
        let entity = &rest[i + 1..end];
        let c = match entity {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            e if e.starts_with("#x") => u32::from_str_radix(&e[2..], 16)
                .ok()
                .and_then(char::from_u32)
                .ok_or_else(|| format!("bad reference &{e};"))?,
            e if e.starts_with('#') => e[1..]
                .parse::<u32>()
                .ok()
                .and_then(char::from_u32)
                .ok_or_else(|| format!("bad reference &{e};"))?,
            e => return Err(format!("unknown entity &{e};")),
        };
        out.push(c);
        rest = &rest[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_listing_as_s3_writes_it() {
        let doc = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Name>b</Name><Prefix>reg/</Prefix><IsTruncated>true</IsTruncated>
  <Contents><Key>reg/a&amp;b &#x41;</Key><LastModified>2024-01-02T03:04:05.000Z</LastModified><Size>71</Size></Contents>
  <Contents><Key>reg/c</Key><Size>3</Size><Owner/></Contents>
  <CommonPrefixes><Prefix>reg/d/</Prefix></CommonPrefixes>
  <NextContinuationToken><![CDATA[tok]]></NextContinuationToken>
</ListBucketResult>"#;
        let r = parse(doc).unwrap();
        assert_eq!(r.name, "ListBucketResult");
        let keys: Vec<&str> = r.all("Contents").filter_map(|c| c.text_of("Key")).collect();
        assert_eq!(keys, ["reg/a&b A", "reg/c"]);
        assert_eq!(r.text_of("IsTruncated"), Some("true"));
        assert_eq!(r.text_of("NextContinuationToken"), Some("tok"));
        assert_eq!(
            r.child("CommonPrefixes").unwrap().text_of("Prefix"),
            Some("reg/d/")
        );
        assert!(parse("<a><b></a>").is_err());
        assert_eq!(escape("a&<b>"), "a&amp;&lt;b&gt;");
    }
}
