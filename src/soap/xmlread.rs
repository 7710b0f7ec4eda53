//! A small reader for the flat parts of coconnect messages: collects the text of leaf elements
//! of one namespace by their path below the root, and keeps the children of the root element.
//!
//! Must never: keep anything from inside an element of another namespace. Such an element (the
//! `LPCO` a SendCO carries, say) is passed over: its document is read by its own reader, and
//! collecting its leaves here cost more than the message header this reader is asked for.

use quick_xml::events::{BytesStart, Event};
use quick_xml::name::ResolveResult;
use quick_xml::NsReader;

/// Leaf texts of elements in `ns`, keyed by slash-joined local names below the root
/// (`MessageHeader/MessageID`), in document order; plus the root's local name.
pub struct Flat {
    pub root: String,
    pub root_ns: String,
    pub leaves: Vec<(String, String)>,
}

impl Flat {
    pub fn get(&self, path: &str) -> Option<&str> {
        self.leaves.iter().find(|(p, _)| p == path).map(|(_, v)| v.as_str())
    }
}

const UNFINISHED: &str = "the document ends before its elements do";

pub fn read_flat(xml: &[u8], ns: &str) -> Result<Flat, String> {
    let mut reader = NsReader::from_reader(xml);
    reader.config_mut().check_end_names = true;
    // The local names of the open elements below the root, all of them in `ns`.
    let mut open: Vec<String> = Vec::new();
    // Depth inside an element of another namespace. Its events are still read one by one (not
    // with `read_to_end`, which leaves the namespace scopes it passes open in quick-xml 0.37,
    // tafia/quick-xml#597), so that its declarations end with it; nothing in it is kept.
    let mut foreign = 0usize;
    // The root is open: a document that ends before it closes is refused.
    let mut root_open = false;
    let mut text = String::new();
    let mut root = None;
    let mut leaves = Vec::new();
    loop {
        let (resolved, event) = reader.read_resolved_event().map_err(|e| e.to_string())?;
        if foreign > 0 {
            match event {
                Event::Start(_) => foreign += 1,
                Event::End(_) => foreign -= 1,
                Event::Eof => return Err(UNFINISHED.to_owned()),
                _ => {}
            }
            continue;
        }
        let in_ns = matches!(resolved, ResolveResult::Bound(n) if n.as_ref() == ns.as_bytes());
        match event {
            Event::Start(e) if root.is_none() => {
                root = Some((local_name(&e), namespace(&resolved)));
                root_open = true;
            }
            Event::Empty(e) if root.is_none() => root = Some((local_name(&e), namespace(&resolved))),
            Event::Start(e) if in_ns => {
                open.push(local_name(&e));
                text.clear();
            }
            Event::Start(_) => {
                foreign = 1;
                text.clear();
            }
            Event::Empty(e) if in_ns => {
                let mut path = open.join("/");
                if !path.is_empty() {
                    path.push('/');
                }
                path.push_str(&local_name(&e));
                leaves.push((path, String::new()));
            }
            Event::Text(t) => text.push_str(&t.unescape().map_err(|e| e.to_string())?),
            Event::CData(c) => text.push_str(&String::from_utf8_lossy(&c)),
            Event::End(_) => {
                if !open.is_empty() && !text.trim().is_empty() {
                    leaves.push((open.join("/"), text.trim().to_owned()));
                }
                text.clear();
                // An end with no element of ours open is the root's.
                if open.pop().is_none() {
                    root_open = false;
                }
            }
            Event::Eof if root_open || !open.is_empty() => return Err(UNFINISHED.to_owned()),
            Event::Eof => break,
            _ => {}
        }
    }
    let (root, root_ns) = root.ok_or("empty document")?;
    Ok(Flat { root, root_ns, leaves })
}

fn local_name(e: &BytesStart<'_>) -> String {
    String::from_utf8_lossy(e.local_name().as_ref()).into_owned()
}

fn namespace(resolved: &ResolveResult<'_>) -> String {
    match resolved {
        ResolveResult::Bound(n) => String::from_utf8_lossy(n.as_ref()).into_owned(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NS: &str = "urn:example:cc";

    #[test]
    fn leaves_of_the_namespace_by_path_and_the_root() {
        let xml = format!(
            r#"<cc:SendCO xmlns:cc="{NS}"><cc:MessageHeader><cc:MessageID> m-1 </cc:MessageID><cc:Note/></cc:MessageHeader><cc:Reason>a &amp; <![CDATA[b]]></cc:Reason></cc:SendCO>"#
        );
        let flat = read_flat(xml.as_bytes(), NS).unwrap();
        assert_eq!((flat.root.as_str(), flat.root_ns.as_str()), ("SendCO", NS));
        assert_eq!(
            flat.leaves,
            [
                ("MessageHeader/MessageID".to_owned(), "m-1".to_owned()),
                ("MessageHeader/Note".to_owned(), String::new()),
                ("Reason".to_owned(), "a & b".to_owned()),
            ]
        );
    }

    #[test]
    fn an_element_of_another_namespace_is_skipped_whole() {
        // Even an element of `ns` inside it (a document may use any prefix) is no leaf here, and
        // what follows it is read as before.
        let xml = format!(
            r#"<cc:SendCO xmlns:cc="{NS}"><cc:MessageHeader><cc:MessageID>m-1</cc:MessageID></cc:MessageHeader><LPCO xmlns="urn:wco"><Item><cc:MessageID>inner</cc:MessageID><TypeCode>C</TypeCode></Item><Item/></LPCO><cc:Reason>r</cc:Reason></cc:SendCO>"#
        );
        let flat = read_flat(xml.as_bytes(), NS).unwrap();
        assert_eq!(
            flat.leaves,
            [("MessageHeader/MessageID".to_owned(), "m-1".to_owned()), ("Reason".to_owned(), "r".to_owned())]
        );
    }

    #[test]
    fn the_namespaces_declared_in_a_skipped_element_end_with_it() {
        let expected =
            [("MessageHeader/MessageID".to_owned(), "m-1".to_owned()), ("Reason".to_owned(), "r".to_owned())];
        // Our namespace as the default, redeclared by the LPCO; and as a prefix, rebound in it.
        let default = format!(
            r#"<SendCO xmlns="{NS}"><MessageHeader><MessageID>m-1</MessageID></MessageHeader><LPCO xmlns="urn:wco"><Item/></LPCO><Reason>r</Reason></SendCO>"#
        );
        let prefixed = format!(
            r#"<cc:SendCO xmlns:cc="{NS}"><cc:MessageHeader><cc:MessageID>m-1</cc:MessageID></cc:MessageHeader><x:LPCO xmlns:x="urn:wco" xmlns:cc="urn:other" cc:a="1"><x:Item/></x:LPCO><cc:Reason>r</cc:Reason></cc:SendCO>"#
        );
        for xml in [default, prefixed] {
            assert_eq!(read_flat(xml.as_bytes(), NS).unwrap().leaves, expected, "{xml}");
        }
        // A prefix bound to our namespace inside a foreign element does not make a later
        // element of another namespace ours.
        let bound_inside = format!(
            r#"<cc:SendCO xmlns:cc="{NS}" xmlns:o="urn:other"><x:LPCO xmlns:x="urn:wco" xmlns:o="{NS}"/><o:MessageID>forged</o:MessageID></cc:SendCO>"#
        );
        assert!(read_flat(bound_inside.as_bytes(), NS).unwrap().leaves.is_empty());
    }

    #[test]
    fn a_document_that_is_not_well_formed_is_refused() {
        for xml in [
            format!(r#"<cc:A xmlns:cc="{NS}"><cc:B></cc:C></cc:A>"#),
            format!(r#"<cc:A xmlns:cc="{NS}"><D xmlns="urn:x"><E></F></D></cc:A>"#),
            format!(r#"<cc:A xmlns:cc="{NS}"><D xmlns="urn:x"><E>"#),
            format!(r#"<cc:A xmlns:cc="{NS}"><cc:B>b</cc:B>"#),
            String::new(),
        ] {
            assert!(read_flat(xml.as_bytes(), NS).is_err(), "{xml}");
        }
    }
}
