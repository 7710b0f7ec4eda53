//! Claims reconciliation (WCO Interconnectivity Framework, Annex I A.42–A.48): the importing
//! administration's clearance system declares goods under preference and names the CO (or DO)
//! it relies on; this module compares the declaration with what the exporting partner certified,
//! item by item, and tracks how much of each certified item declarations have used up.
//!
//! Owns:
//! - [`Declaration`], the declaration summary the clearance system posts, its reading from JSON
//!   ([`parse_declaration`]) and its validation ([`validate`]), every fault as `CLAIM-INVALID`
//!   with a JSON path (0-based array indices, e.g. `items[2].hs_code`);
//! - [`reconcile`]: the field-by-field comparison with the certificate and the utilisation
//!   check, and [`assess`]: what a claim against a certificate in a given state amounts to;
//! - the stable codes in [`code`].
//!
//! Must never: touch the database, the network or the clock; grant or refuse preferential
//! treatment (it reports facts, the customs officer decides); trust the certificate's text to
//! be well-formed numbers (it was validated on receipt, but a value that does not read is
//! treated as not certified, never unwrapped).
//!
//! # Comparison rules
//!
//! A declared item names the CO item it claims (`co_item`, the item's `SequenceNumeric`), or,
//! without it, is matched by its HS subheading (first 6 digits): exactly one CO item must have
//! it, otherwise `CLAIM-ITEM-UNKNOWN`. For the item found:
//!
//! | Field | Certified | Mismatch |
//! |-------|-----------|----------|
//! | `hs_code` | `Commodity/Classification/ID` | first 6 digits differ (`CLAIM-HS-MISMATCH`); the declaration's national code may be longer |
//! | `origin_country` | `Origin/CountryCode` | differs or not certified (`CLAIM-ORIGIN-MISMATCH`) |
//! | `quantity`, `quantity_unit` | `GoodsMeasure/TariffQuantity` | another unit (`CLAIM-UNIT-MISMATCH`; mass units KGM, TNE, GRM convert), more than certified (`CLAIM-QUANTITY-EXCEEDS`) |
//! | `weight` (kg, gross) | `GoodsMeasure/GrossMassMeasure` | more than certified (`CLAIM-WEIGHT-EXCEEDS`); a certified unit that is no mass unit (`CLAIM-UNIT-MISMATCH`) |
//! | `invoice_number` | `Invoice/ID` | differs, when both are given (`CLAIM-INVOICE-MISMATCH`) |
//!
//! A quantity or weight the certificate does not state is not compared and not tracked.
//!
//! # Utilisation
//!
//! Every CO item a declaration claims counts towards the item's utilisation, whatever the
//! comparison found: what was claimed was claimed, and a corrected declaration (same number,
//! issuer and reference) replaces the earlier one instead of adding to it (the store sees to
//! that). Quantities are counted in the certificate's tariff-quantity unit, weights in kg. When
//! what earlier declarations claimed plus what this one claims exceeds the certified amount,
//! the item is listed in [`Reconciliation::over_utilised`] (`CLAIM-OVER-UTILISED`) — only for
//! items this declaration claims. Over-utilisation is a flag next to the outcome, not a
//! mismatch: the declaration itself may agree with the certificate.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};

use crate::message::text;
use crate::payload::codes::{is_country_code, is_hs_code, is_unit_code};
use crate::payload::model::{ConsignmentItem, Measure};
use crate::payload::Lpco;

/// Stable codes of claim results and declaration faults.
pub mod code {
    /// The declaration itself is not acceptable (reported with a field path).
    pub const INVALID: &str = "CLAIM-INVALID";
    /// The HS subheading (first 6 digits) differs from the certified one.
    pub const HS_MISMATCH: &str = "CLAIM-HS-MISMATCH";
    /// The country of origin differs from the certified one.
    pub const ORIGIN_MISMATCH: &str = "CLAIM-ORIGIN-MISMATCH";
    /// The declared quantity is more than the certified quantity.
    pub const QUANTITY_EXCEEDS: &str = "CLAIM-QUANTITY-EXCEEDS";
    /// The declared gross weight is more than the certified gross weight.
    pub const WEIGHT_EXCEEDS: &str = "CLAIM-WEIGHT-EXCEEDS";
    /// The invoice number differs from the certified one.
    pub const INVOICE_MISMATCH: &str = "CLAIM-INVOICE-MISMATCH";
    /// The declared unit cannot be compared with the certified one.
    pub const UNIT_MISMATCH: &str = "CLAIM-UNIT-MISMATCH";
    /// No CO item with that number, or no single CO item with that HS subheading.
    pub const ITEM_UNKNOWN: &str = "CLAIM-ITEM-UNKNOWN";
    /// Claims together exceed a certified quantity or weight.
    pub const OVER_UTILISED: &str = "CLAIM-OVER-UTILISED";
}

/// Longest declaration number, issuer, reference and invoice number: an..35, as the WCO Data
/// Model's document identifiers.
pub const MAX_ID_LEN: usize = 35;
/// Most items a declaration may carry (a customs declaration numbers its goods items n..3).
pub const MAX_ITEMS: usize = 999;

/// A declaration summary from the clearance system: the goods it declares under preference and
/// the certificate (issuer and reference, D014) it relies on.
///
/// Unknown fields are refused: a misspelt optional field would otherwise silently skip a check.
/// Missing text fields read as empty so that [`validate`] reports them with their path.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Declaration {
    /// The customs declaration's number; with `issuer` and `reference`, identifies the claim.
    #[serde(default)]
    pub declaration_number: String,
    /// The party that issued the certificate (a configured partner, e.g. `KR`).
    #[serde(default)]
    pub issuer: String,
    /// The certificate's reference number (`LPCO/ID`).
    #[serde(default)]
    pub reference: String,
    #[serde(default)]
    pub items: Vec<DeclaredItem>,
}

/// One goods item of the declaration.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeclaredItem {
    /// The `SequenceNumeric` of the CO item claimed; when absent, matched by HS subheading.
    #[serde(default)]
    pub co_item: Option<u32>,
    /// The national tariff code, 6 to 10 digits; its first 6 are compared.
    #[serde(default)]
    pub hs_code: String,
    /// ISO 3166-1 alpha-2.
    #[serde(default)]
    pub origin_country: String,
    /// In `quantity_unit` (required with a quantity).
    #[serde(default)]
    pub quantity: Option<f64>,
    /// UN/ECE Rec 20 unit code (KGM, C62 ...).
    #[serde(default)]
    pub quantity_unit: Option<String>,
    /// Gross weight in kg.
    #[serde(default)]
    pub weight: Option<f64>,
    #[serde(default)]
    pub invoice_number: Option<String>,
}

/// A fault of the declaration itself (code [`code::INVALID`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeclarationError {
    pub code: String,
    /// JSON path of the field, 0-based indices: `items[2].hs_code`; `/` for the whole body.
    pub path: String,
    pub message: String,
}

impl DeclarationError {
    fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        DeclarationError { code: code::INVALID.to_owned(), path: path.into(), message: message.into() }
    }
}

/// Reads a declaration from a JSON body, trims its text and validates it.
///
/// # Errors
///
/// Every fault found, each `CLAIM-INVALID`: one for a body that is not a declaration (not
/// JSON, a wrong type, an unknown field; located at the item when it is inside one), otherwise
/// all of [`validate`].
pub fn parse_declaration(body: &[u8]) -> Result<Declaration, Vec<DeclarationError>> {
    let declaration: Declaration = serde_json::from_slice(body).map_err(|e| vec![locate_json_error(body, e)])?;
    let declaration = declaration.trimmed();
    let errors = validate(&declaration);
    if errors.is_empty() {
        Ok(declaration)
    } else {
        Err(errors)
    }
}

/// serde_json says where (line, column) but not which field; for a fault inside an item, the
/// item is worth naming, so each item is read again on its own to find the first that fails.
fn locate_json_error(body: &[u8], error: serde_json::Error) -> DeclarationError {
    let items = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("items").and_then(|i| i.as_array()).cloned())
        .unwrap_or_default();
    for (i, item) in items.into_iter().enumerate() {
        if let Err(e) = serde_json::from_value::<DeclaredItem>(item) {
            return DeclarationError::new(format!("items[{i}]"), e.to_string());
        }
    }
    DeclarationError::new("/", format!("not a declaration: {error}"))
}

impl Declaration {
    /// The same declaration with surrounding white space removed from every text, so that
    /// `" KR"` and `"KR"` name the same issuer.
    fn trimmed(mut self) -> Self {
        for s in [&mut self.declaration_number, &mut self.issuer, &mut self.reference] {
            *s = s.trim().to_owned();
        }
        for item in &mut self.items {
            item.hs_code = item.hs_code.trim().to_owned();
            item.origin_country = item.origin_country.trim().to_owned();
            for s in [&mut item.quantity_unit, &mut item.invoice_number].into_iter().flatten() {
                *s = s.trim().to_owned();
            }
        }
        self
    }
}

/// Every fault of the declaration (empty when it is acceptable). Paths use 0-based indices.
pub fn validate(d: &Declaration) -> Vec<DeclarationError> {
    let mut errors = Vec::new();
    for (path, value) in
        [("declaration_number", &d.declaration_number), ("issuer", &d.issuer), ("reference", &d.reference)]
    {
        check_identifier(&mut errors, path, Some(value), true);
    }
    if d.items.is_empty() {
        errors.push(DeclarationError::new("items", "at least one item is required"));
    } else if d.items.len() > MAX_ITEMS {
        errors.push(DeclarationError::new("items", format!("at most {MAX_ITEMS} items")));
    } else {
        for (i, item) in d.items.iter().enumerate() {
            validate_item(&mut errors, &format!("items[{i}]"), item);
        }
    }
    errors
}

fn check_identifier(errors: &mut Vec<DeclarationError>, path: &str, value: Option<&String>, required: bool) {
    let Some(v) = value else {
        if required {
            errors.push(DeclarationError::new(path, "is required"));
        }
        return;
    };
    if v.is_empty() {
        errors.push(DeclarationError::new(path, "must not be empty"));
    } else if v.chars().count() > MAX_ID_LEN {
        errors.push(DeclarationError::new(path, format!("at most {MAX_ID_LEN} characters")));
    } else if let Some(c) = text::forbidden_char(v, true) {
        errors.push(DeclarationError::new(path, text::describe(c)));
    }
}

fn validate_item(errors: &mut Vec<DeclarationError>, at: &str, item: &DeclaredItem) {
    if item.co_item == Some(0) {
        errors.push(DeclarationError::new(format!("{at}.co_item"), "CO items are numbered from 1"));
    }
    if !is_hs_code(&item.hs_code) {
        errors.push(DeclarationError::new(format!("{at}.hs_code"), "an HS code of 6 to 10 digits is required"));
    }
    if !is_country_code(&item.origin_country) {
        errors.push(DeclarationError::new(
            format!("{at}.origin_country"),
            "an ISO 3166-1 alpha-2 country code is required",
        ));
    }
    check_amount(errors, &format!("{at}.quantity"), item.quantity);
    check_amount(errors, &format!("{at}.weight"), item.weight);
    match item.quantity_unit.as_deref() {
        Some(unit) if !is_unit_code(unit) => errors.push(DeclarationError::new(
            format!("{at}.quantity_unit"),
            "a UN/ECE Rec 20 unit code is required (KGM, C62 ...)",
        )),
        None if item.quantity.is_some() => errors
            .push(DeclarationError::new(format!("{at}.quantity_unit"), "a quantity needs its unit (quantity_unit)")),
        _ => {}
    }
    check_identifier(errors, &format!("{at}.invoice_number"), item.invoice_number.as_ref(), false);
}

fn check_amount(errors: &mut Vec<DeclarationError>, path: &str, value: Option<f64>) {
    if value.is_some_and(|v| !v.is_finite() || v < 0.0) {
        errors.push(DeclarationError::new(path, "must be a non-negative number"));
    }
}

/// What earlier claims used of one CO item: quantity in the certified tariff-quantity unit,
/// gross weight in kg (0 when nothing was claimed).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Utilisation {
    pub quantity: f64,
    pub weight: f64,
}

/// Whether the declaration agrees with the certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Match,
    Mismatch,
}

/// One disagreement between a declared item and the certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mismatch {
    /// Position of the item in the declaration, 1-based (a declaration's item number).
    pub item: usize,
    /// The CO item it was compared with; `None` when none was found.
    pub co_item: Option<u32>,
    /// The declaration's field: `hs_code`, `origin_country`, `quantity`, `quantity_unit`,
    /// `weight`, `invoice_number` or `co_item`.
    pub field: String,
    pub declared: Option<String>,
    /// As the certificate states it; `None` when it does not.
    pub certified: Option<String>,
    pub code: String,
}

/// A CO item that claims together have used beyond its certified amount.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OverUtilisation {
    pub co_item: u32,
    /// `quantity` or `weight`.
    pub field: String,
    /// The unit of the three amounts (the certified tariff-quantity unit, or KGM for weight).
    pub unit: String,
    pub certified: f64,
    pub previously_claimed: f64,
    pub this_claim: f64,
    pub code: String,
}

/// What one declaration claims of one CO item (what the store records as a claim item).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClaimedItem {
    pub co_item: u32,
    /// In the certified tariff-quantity unit; `None` when nothing countable was declared.
    pub quantity: Option<f64>,
    /// Gross weight in kg; `None` likewise.
    pub weight: Option<f64>,
}

/// The result of comparing a declaration with a certificate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reconciliation {
    pub outcome: Outcome,
    pub mismatches: Vec<Mismatch>,
    /// Items used beyond their certified amount (the utilisation flag, apart from `outcome`).
    pub over_utilised: Vec<OverUtilisation>,
    /// What this declaration claims, per CO item, in CO item order.
    pub claimed: Vec<ClaimedItem>,
}

impl Reconciliation {
    /// Claims together exceed a certified amount of some item this declaration claims.
    pub fn is_over_utilised(&self) -> bool {
        !self.over_utilised.is_empty()
    }
}

/// What the certificate says of one item, read leniently.
struct Certified<'a> {
    number: u32,
    hs: Option<&'a str>,
    origin: Option<&'a str>,
    quantity: Option<Amount<'a>>,
    gross: Option<Amount<'a>>,
    invoice: Option<&'a str>,
}

/// A certified measure: its text as written (for reports), its value if it reads as a decimal.
#[derive(Clone, Copy)]
struct Amount<'a> {
    text: &'a str,
    value: Option<f64>,
    unit: &'a str,
}

fn text(s: &Option<String>) -> Option<&str> {
    s.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

fn amount(m: Option<&Measure>) -> Option<Amount<'_>> {
    let m = m?;
    let written = text(&m.value)?;
    Some(Amount { text: written, value: parse_decimal(written), unit: text(&m.unit_code).unwrap_or("") })
}

/// A non-negative xs:decimal as the CO writes it (`6120.5`, `20160`); `None` for anything else,
/// including signs and exponents, which the schema does not allow.
fn parse_decimal(s: &str) -> Option<f64> {
    let digits = s.bytes().filter(u8::is_ascii_digit).count();
    let dots = s.bytes().filter(|&b| b == b'.').count();
    if digits == 0 || dots > 1 || digits + dots != s.len() {
        return None;
    }
    s.parse::<f64>().ok().filter(|v| v.is_finite())
}

fn certified_items(co: &Lpco) -> Vec<Certified<'_>> {
    co.items().iter().enumerate().map(|(i, item)| certified(i, item)).collect()
}

fn certified(position: usize, item: &ConsignmentItem) -> Certified<'_> {
    let measure = item.goods_measure.as_ref();
    Certified {
        // Validated on receipt to be 1, 2, 3 ... in order; the position stands in if unreadable.
        number: text(&item.sequence_numeric)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| u32::try_from(position + 1).unwrap_or(u32::MAX)),
        hs: item.commodity.as_ref().and_then(|c| c.classification.as_ref()).and_then(|c| text(&c.id)),
        origin: item.origin.as_ref().and_then(|o| text(&o.country_code)),
        quantity: amount(measure.and_then(|m| m.tariff_quantity.as_ref())),
        gross: amount(measure.and_then(|m| m.gross_mass_measure.as_ref())),
        invoice: item.invoice.as_ref().and_then(|i| text(&i.id)),
    }
}

/// The HS subheading: the first 6 digits, or `None` when the code does not start with 6 digits.
fn subheading(code: &str) -> Option<&str> {
    code.get(..6).filter(|p| p.bytes().all(|b| b.is_ascii_digit()))
}

/// Kilograms per unit of the UN/ECE Rec 20 mass units a CO uses; `None` for any other unit.
fn kg_per(unit: &str) -> Option<f64> {
    match unit {
        "KGM" => Some(1.0),
        "TNE" => Some(1000.0),
        "GRM" => Some(0.001),
        _ => None,
    }
}

/// `claimed` is more than `certified`, beyond the rounding of binary fractions (sums of
/// decimals such as 0.1 + 0.2 must not exceed 0.3).
fn exceeds(claimed: f64, certified: f64) -> bool {
    claimed > certified + 1e-9 * certified.abs().max(1.0)
}

/// Compares `declaration` with the certificate `co`, given what other declarations already
/// claimed of each CO item (keyed by `SequenceNumeric`).
pub fn reconcile(co: &Lpco, declaration: &Declaration, already_claimed: &HashMap<u32, Utilisation>) -> Reconciliation {
    let certified = certified_items(co);
    let mut mismatches = Vec::new();
    let mut claimed: BTreeMap<u32, ClaimedItem> = BTreeMap::new();
    for (index, item) in declaration.items.iter().enumerate() {
        let mut found = Found { item: index + 1, co_item: None, mismatches: &mut mismatches };
        let Some(c) = resolve(&certified, item, &mut found) else { continue };
        found.co_item = Some(c.number);
        found.compare_hs(c, item);
        found.compare_origin(c, item);
        found.compare_invoice(c, item);
        let quantity = found.compare_quantity(c, item);
        let weight = found.compare_weight(c, item);
        let entry = claimed.entry(c.number).or_insert(ClaimedItem { co_item: c.number, quantity: None, weight: None });
        add(&mut entry.quantity, quantity);
        add(&mut entry.weight, weight);
    }
    let over_utilised = claimed.values().flat_map(|c| over_utilisation(&certified, c, already_claimed)).collect();
    Reconciliation {
        outcome: if mismatches.is_empty() { Outcome::Match } else { Outcome::Mismatch },
        mismatches,
        over_utilised,
        claimed: claimed.into_values().collect(),
    }
}

fn add(total: &mut Option<f64>, more: Option<f64>) {
    if let Some(more) = more {
        *total = Some(total.unwrap_or(0.0) + more);
    }
}

/// The mismatches of one declared item, as they are found.
struct Found<'m> {
    item: usize,
    co_item: Option<u32>,
    mismatches: &'m mut Vec<Mismatch>,
}

impl Found<'_> {
    fn push(&mut self, field: &str, declared: Option<String>, certified: Option<&str>, code: &str) {
        self.mismatches.push(Mismatch {
            item: self.item,
            co_item: self.co_item,
            field: field.to_owned(),
            declared,
            certified: certified.map(str::to_owned),
            code: code.to_owned(),
        });
    }

    /// Compares HS subheadings (the declaration's national code may be longer); reports the
    /// codes as written.
    fn compare_hs(&mut self, c: &Certified<'_>, item: &DeclaredItem) {
        let certified = c.hs.and_then(subheading);
        if certified.is_none() || certified != subheading(&item.hs_code) {
            self.push("hs_code", Some(item.hs_code.clone()), c.hs, code::HS_MISMATCH);
        }
    }

    fn compare_origin(&mut self, c: &Certified<'_>, item: &DeclaredItem) {
        if c.origin != Some(item.origin_country.as_str()) {
            self.push("origin_country", Some(item.origin_country.clone()), c.origin, code::ORIGIN_MISMATCH);
        }
    }

    /// Only when both sides give one: a CO item without an invoice certifies none.
    fn compare_invoice(&mut self, c: &Certified<'_>, item: &DeclaredItem) {
        if let (Some(declared), Some(certified)) = (item.invoice_number.as_deref(), c.invoice) {
            if declared != certified {
                self.push("invoice_number", Some(declared.to_owned()), Some(certified), code::INVOICE_MISMATCH);
            }
        }
    }

    /// Compares the declared quantity and returns it in the certified unit, to be counted; `None`
    /// when nothing was declared, nothing is certified, or the units cannot be compared.
    fn compare_quantity(&mut self, c: &Certified<'_>, item: &DeclaredItem) -> Option<f64> {
        let declared = item.quantity?;
        let certified = c.quantity?;
        let unit = item.quantity_unit.as_deref().unwrap_or("");
        let Some(in_certified_unit) = convert(declared, unit, certified.unit) else {
            self.push("quantity_unit", Some(unit.to_owned()), Some(certified.unit), code::UNIT_MISMATCH);
            return None;
        };
        if certified.value.is_some_and(|v| exceeds(in_certified_unit, v)) {
            self.push("quantity", Some(format!("{declared} {unit}")), Some(&shown(certified)), code::QUANTITY_EXCEEDS);
        }
        Some(in_certified_unit)
    }

    /// Compares the declared gross weight (kg) and returns it to be counted.
    fn compare_weight(&mut self, c: &Certified<'_>, item: &DeclaredItem) -> Option<f64> {
        let declared = item.weight?;
        let certified = c.gross?;
        let Some(factor) = kg_per(certified.unit) else {
            self.push("weight", Some(format!("{declared} KGM")), Some(&shown(certified)), code::UNIT_MISMATCH);
            return None;
        };
        if certified.value.is_some_and(|v| exceeds(declared, v * factor)) {
            self.push("weight", Some(format!("{declared} KGM")), Some(&shown(certified)), code::WEIGHT_EXCEEDS);
        }
        Some(declared)
    }
}

fn shown(a: Amount<'_>) -> String {
    format!("{} {}", a.text, a.unit)
}

/// `value` in `from` expressed in `to`: the same unit, or two mass units.
fn convert(value: f64, from: &str, to: &str) -> Option<f64> {
    if from == to {
        return Some(value);
    }
    Some(value * kg_per(from)? / kg_per(to)?)
}

/// The CO item a declared item claims: by number, or by its unique HS subheading. Reports
/// `CLAIM-ITEM-UNKNOWN` when there is none.
fn resolve<'c, 'a>(
    certified: &'c [Certified<'a>],
    item: &DeclaredItem,
    found: &mut Found<'_>,
) -> Option<&'c Certified<'a>> {
    if let Some(number) = item.co_item {
        let c = certified.iter().find(|c| c.number == number);
        if c.is_none() {
            found.push("co_item", Some(number.to_string()), None, code::ITEM_UNKNOWN);
        }
        return c;
    }
    let wanted = subheading(&item.hs_code);
    let candidates: Vec<&Certified<'a>> =
        certified.iter().filter(|c| wanted.is_some() && c.hs.and_then(subheading) == wanted).collect();
    match candidates.as_slice() {
        [one] => Some(*one),
        [] => {
            found.push("hs_code", Some(item.hs_code.clone()), None, code::ITEM_UNKNOWN);
            None
        }
        several => {
            // Ambiguous: name the candidates so the clearance system can give co_item.
            let numbers: Vec<String> = several.iter().map(|c| c.number.to_string()).collect();
            found.push(
                "hs_code",
                Some(item.hs_code.clone()),
                Some(&format!("items {}", numbers.join(", "))),
                code::ITEM_UNKNOWN,
            );
            None
        }
    }
}

/// The quantity and weight entries for one claimed CO item whose utilisation goes beyond what
/// was certified.
fn over_utilisation(
    certified: &[Certified<'_>],
    claim: &ClaimedItem,
    already: &HashMap<u32, Utilisation>,
) -> Vec<OverUtilisation> {
    let Some(c) = certified.iter().find(|c| c.number == claim.co_item) else { return Vec::new() };
    let prior = already.get(&claim.co_item).copied().unwrap_or_default();
    let mut out = Vec::new();
    if let (Some(this), Some(Amount { value: Some(limit), unit, .. })) = (claim.quantity, c.quantity) {
        if exceeds(prior.quantity + this, limit) {
            out.push(over(claim.co_item, "quantity", unit, limit, prior.quantity, this));
        }
    }
    let gross_kg = c.gross.and_then(|g| Some(g.value? * kg_per(g.unit)?));
    if let (Some(this), Some(limit)) = (claim.weight, gross_kg) {
        if exceeds(prior.weight + this, limit) {
            out.push(over(claim.co_item, "weight", "KGM", limit, prior.weight, this));
        }
    }
    out
}

fn over(
    co_item: u32,
    field: &str,
    unit: &str,
    certified: f64,
    previously_claimed: f64,
    this_claim: f64,
) -> OverUtilisation {
    OverUtilisation {
        co_item,
        field: field.to_owned(),
        unit: unit.to_owned(),
        certified,
        previously_claimed,
        this_claim,
        code: code::OVER_UTILISED.to_owned(),
    }
}

/// The answer to a claim, as the API returns it and the store keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClaimStatus {
    /// Reconciled, no mismatch.
    Match,
    /// Reconciled, at least one mismatch.
    Mismatch,
    /// The certificate was cancelled: not reconciled, nothing counted.
    Cancelled,
    /// The exporter notified a cancellation that is not decided yet: reconciled all the same.
    CancellationPending,
    /// No certificate with that issuer and reference was received.
    NotReceived,
    /// The issuer is not a configured partner.
    UnknownIssuer,
}

impl ClaimStatus {
    pub const ALL: [ClaimStatus; 6] = [
        ClaimStatus::Match,
        ClaimStatus::Mismatch,
        ClaimStatus::Cancelled,
        ClaimStatus::CancellationPending,
        ClaimStatus::NotReceived,
        ClaimStatus::UnknownIssuer,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ClaimStatus::Match => "match",
            ClaimStatus::Mismatch => "mismatch",
            ClaimStatus::Cancelled => "cancelled",
            ClaimStatus::CancellationPending => "cancellation_pending",
            ClaimStatus::NotReceived => "not_received",
            ClaimStatus::UnknownIssuer => "unknown_issuer",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|st| st.as_str() == s)
    }
}

/// What is recorded and answered for one claim.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClaimResult {
    pub status: ClaimStatus,
    pub certificate_id: Option<String>,
    pub mismatches: Vec<Mismatch>,
    pub over_utilised: Vec<OverUtilisation>,
    /// What this claim counts against the certificate's items.
    pub claimed: Vec<ClaimedItem>,
}

impl ClaimResult {
    /// A claim that could not be reconciled (unknown issuer, nothing received, cancelled).
    pub fn unreconciled(status: ClaimStatus, certificate_id: Option<&str>) -> Self {
        ClaimResult {
            status,
            certificate_id: certificate_id.map(str::to_owned),
            mismatches: Vec::new(),
            over_utilised: Vec::new(),
            claimed: Vec::new(),
        }
    }
}

/// What a claim against certificate `certificate_id`, now in lifecycle state `state`, amounts
/// to: a cancelled certificate is not reconciled (and nothing is counted against it); one with
/// a cancellation pending is reconciled but answered `cancellation_pending`, so that the
/// clearance system holds the goods; any other is reconciled.
pub fn assess(
    certificate_id: &str,
    state: &str,
    co: &Lpco,
    declaration: &Declaration,
    already_claimed: &HashMap<u32, Utilisation>,
) -> ClaimResult {
    if state == "cancelled" {
        return ClaimResult::unreconciled(ClaimStatus::Cancelled, Some(certificate_id));
    }
    let r = reconcile(co, declaration, already_claimed);
    let status = match (state, r.outcome) {
        ("cancellation_pending", _) => ClaimStatus::CancellationPending,
        (_, Outcome::Match) => ClaimStatus::Match,
        (_, Outcome::Mismatch) => ClaimStatus::Mismatch,
    };
    ClaimResult {
        status,
        certificate_id: Some(certificate_id.to_owned()),
        mismatches: r.mismatches,
        over_utilised: r.over_utilised,
        claimed: r.claimed,
    }
}

#[cfg(test)]
mod tests;
