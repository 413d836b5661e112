use outlook_pst::ltp::prop_context::PropertyValue;
use outlook_pst::messaging::store::Store;
use outlook_pst::ndb::node_id::NodeId;
use std::rc::Rc;

fn folder(store: &Rc<dyn Store>, f: Rc<dyn outlook_pst::messaging::folder::Folder>, depth: usize) {
    let name = f.properties().display_name().unwrap_or_default();
    let class = match f.properties().get(0x3613) { Some(PropertyValue::Unicode(v)) => v.to_string(), Some(PropertyValue::String8(v)) => v.to_string(), _ => "-".into() };
    println!("{}{} [{}] nid={:?}", "  ".repeat(depth), name, class, f.properties().node_id());
    if let Some(ct) = f.contents_table() {
        for row in ct.rows_matrix() {
            let nid = NodeId::from(u32::from(row.id()));
            let eid = store.properties().make_entry_id(nid).unwrap();
            match store.open_message(&eid, None) {
                Ok(m) => {
                    let p = m.properties();
                    println!("{}  - msg {:?} class={:?} subj={:?}", "  ".repeat(depth), nid, p.message_class().ok(), p.get(0x0037).map(|v| format!("{v:?}").chars().take(60).collect::<String>()));
                    let mut ids: Vec<_> = p.iter().map(|(k, v)| format!("{k:04X}:{}", format!("{v:?}").chars().take(50).collect::<String>())).collect();
                    ids.sort();
                    for i in ids { println!("{}      {}", "  ".repeat(depth), i); }
                    println!("{}    recips={} atts={}", "  ".repeat(depth), m.recipient_table().map(|t| t.rows_matrix().count()).unwrap_or(0), m.attachment_table().map(|t| t.rows_matrix().count()).unwrap_or(0));
                }
                Err(e) => println!("  ERR {e}"),
            }
        }
    }
    if let Some(ht) = f.hierarchy_table() {
        for row in ht.rows_matrix() {
            let nid = NodeId::from(u32::from(row.id()));
            let eid = store.properties().make_entry_id(nid).unwrap();
            match store.open_folder(&eid) { Ok(c) => folder(store, c, depth + 1), Err(e) => println!("ERR {e}") }
        }
    }
}

fn main() {
    let path = std::env::args().nth(1).unwrap();
    let store = outlook_pst::open_store(&path).unwrap();
    let root = store.properties().ipm_sub_tree_entry_id().unwrap();
    let f = store.open_folder(&root).unwrap();
    folder(&store, f, 0);
    let nm = store.named_property_map().unwrap();
    for e in nm.properties().stream_entry().unwrap() {
        println!("named {:04X} {:?} {:?}", e.prop_id(), e.guid(), e.id());
    }
}
