//! A small reader for the flat parts of coconnect messages: collects the text of leaf elements
//! of one namespace by their path below the root, and keeps the children of the root element.

use quick_xml::events::Event;
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

pub fn read_flat(xml: &[u8], ns: &str) -> Result<Flat, String> {
    let mut reader = NsReader::from_reader(xml);
    reader.config_mut().check_end_names = true;
    let mut buf = Vec::new();
    let mut stack: Vec<String> = Vec::new();
    let mut text = String::new();
    let mut root = None;
    let mut leaves = Vec::new();
    loop {
        let (resolved, event) = reader.read_resolved_event_into(&mut buf).map_err(|e| e.to_string())?;
        let in_ns = matches!(resolved, ResolveResult::Bound(n) if n.as_ref() == ns.as_bytes());
        let ns_text = match resolved {
            ResolveResult::Bound(n) => String::from_utf8_lossy(n.as_ref()).into_owned(),
            _ => String::new(),
        };
        match event {
            Event::Start(e) => {
                let local = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                if root.is_none() {
                    root = Some((local.clone(), ns_text.clone()));
                }
                stack.push(if in_ns { local } else { format!("{{{ns_text}}}{local}") });
                text.clear();
            }
            Event::Empty(e) => {
                let local = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                if root.is_none() {
                    root = Some((local, ns_text));
                    continue;
                }
                if in_ns {
                    let mut path = stack[1..].join("/");
                    if !path.is_empty() {
                        path.push('/');
                    }
                    path.push_str(&local);
                    leaves.push((path, String::new()));
                }
            }
            Event::Text(t) => {
                let s = t.unescape().map_err(|e| e.to_string())?;
                text.push_str(&s);
            }
            Event::CData(c) => text.push_str(&String::from_utf8_lossy(&c)),
            Event::End(_) => {
                let path = stack[1.min(stack.len())..].join("/");
                if !path.is_empty() && !text.trim().is_empty() {
                    leaves.push((path, text.trim().to_owned()));
                }
                text.clear();
                stack.pop();
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    let (root, root_ns) = root.ok_or("empty document")?;
    Ok(Flat { root, root_ns, leaves })
}
