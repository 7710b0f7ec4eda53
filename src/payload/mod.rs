//! placeholder
pub mod model;
#[cfg(test)]
mod exp {
    #[test]
    fn exp() {
        let xml = std::fs::read_to_string(concat!("/work/main/examples/co.xml")).unwrap();
        let co: super::model::Lpco = yaserde::de::from_str(&xml).unwrap();
        println!("{co:#?}");
        let cfg = yaserde::ser::Config { perform_indent: false, write_document_declaration: false, indent_string: None };
        let out = yaserde::ser::to_string_with_config(&co, &cfg).unwrap();
        println!("{out}");
        let co2: super::model::Lpco = yaserde::de::from_str(&out).unwrap();
        assert_eq!(co, co2);
        let bad = xml.replace("urn:coconnect:xsd:lpco:1", "urn:other");
        println!("{:?}", yaserde::de::from_str::<super::model::Lpco>(&bad).map(|_| ()));
        let nons = xml.replace(" xmlns=\"urn:coconnect:xsd:lpco:1\"", "");
        println!("{:?}", yaserde::de::from_str::<super::model::Lpco>(&nons).map(|c| c.id));
    }
}
