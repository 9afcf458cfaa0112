//! The org's objects and fields, as describe reports them: the standard objects a
//! HubSpot sync touches, with their required fields, lengths, picklists, formula
//! fields and external ids, plus one custom object.

/// A field's type, as describe names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SfType {
    Id,
    String,
    TextArea,
    Email,
    Phone,
    Url,
    Boolean,
    Int,
    Double,
    Currency,
    Percent,
    Date,
    DateTime,
    Picklist,
    MultiPicklist,
    Reference,
    /// A compound address (`MailingAddress`): read-only, read as an object built from
    /// its component fields.
    Address,
}

impl SfType {
    pub fn name(self) -> &'static str {
        match self {
            SfType::Id => "id",
            SfType::String => "string",
            SfType::TextArea => "textarea",
            SfType::Email => "email",
            SfType::Phone => "phone",
            SfType::Url => "url",
            SfType::Boolean => "boolean",
            SfType::Int => "int",
            SfType::Double => "double",
            SfType::Currency => "currency",
            SfType::Percent => "percent",
            SfType::Date => "date",
            SfType::DateTime => "datetime",
            SfType::Picklist => "picklist",
            SfType::MultiPicklist => "multipicklist",
            SfType::Reference => "reference",
            SfType::Address => "address",
        }
    }

    pub fn is_numeric(self) -> bool {
        matches!(
            self,
            SfType::Int | SfType::Double | SfType::Currency | SfType::Percent
        )
    }

    pub fn is_text(self) -> bool {
        matches!(
            self,
            SfType::Id
                | SfType::String
                | SfType::TextArea
                | SfType::Email
                | SfType::Phone
                | SfType::Url
                | SfType::Picklist
                | SfType::MultiPicklist
                | SfType::Reference
        )
    }
}

/// A computed field: formula fields are read-only and computed on read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Formula {
    /// `FirstName & " " & LastName` (the compound Name of leads, contacts, users).
    FullName,
    /// An employee-count band of an account: a custom formula field.
    EmployeeBand,
    /// Opportunity `IsClosed` / `IsWon` / `Probability`, from `StageName`.
    StageClosed,
    StageWon,
    StageProbability,
}

#[derive(Debug, Clone)]
pub struct FieldDef {
    pub name: String,
    pub label: String,
    pub ty: SfType,
    pub length: usize,
    pub nillable: bool,
    pub createable: bool,
    pub updateable: bool,
    pub defaulted_on_create: bool,
    pub formula: Option<Formula>,
    pub picklist: Vec<&'static str>,
    pub restricted: bool,
    pub unique: bool,
    pub external_id: bool,
    pub reference_to: Vec<&'static str>,
    pub relationship_name: Option<String>,
    /// The compound field this one is a component of (`MailingCity` -> `MailingAddress`).
    pub compound: Option<&'static str>,
}

impl FieldDef {
    fn new(name: &str, ty: SfType) -> Self {
        let length = match ty {
            SfType::Id | SfType::Reference => 18,
            SfType::String | SfType::Picklist | SfType::Url => 255,
            SfType::MultiPicklist => 4099,
            SfType::TextArea => 32_000,
            SfType::Email => 80,
            SfType::Phone => 40,
            _ => 0,
        };
        let relationship_name = (ty == SfType::Reference).then(|| {
            name.strip_suffix("__c")
                .map(|base| format!("{base}__r"))
                .unwrap_or_else(|| name.trim_end_matches("Id").to_owned())
        });
        FieldDef {
            name: name.to_owned(),
            label: label_of(name),
            ty,
            length,
            nillable: ty != SfType::Boolean,
            createable: true,
            updateable: true,
            defaulted_on_create: ty == SfType::Boolean,
            formula: None,
            picklist: Vec::new(),
            restricted: false,
            unique: false,
            external_id: false,
            reference_to: Vec::new(),
            relationship_name,
            compound: None,
        }
    }

    /// Required on create: createable, not nillable, not defaulted.
    pub fn required(&self) -> bool {
        self.createable && !self.nillable && !self.defaulted_on_create
    }
}

fn label_of(name: &str) -> String {
    let base = name.trim_end_matches("__c").replace('_', " ");
    let mut out = String::new();
    for (i, c) in base.chars().enumerate() {
        if i > 0 && c.is_uppercase() && !out.ends_with(' ') {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

#[derive(Debug, Clone)]
pub struct ObjectDef {
    pub name: &'static str,
    pub key_prefix: &'static str,
    pub custom: bool,
    pub createable: bool,
    pub fields: Vec<FieldDef>,
}

impl ObjectDef {
    pub fn field(&self, name: &str) -> Option<&FieldDef> {
        self.fields
            .iter()
            .find(|f| f.name.eq_ignore_ascii_case(name))
    }

    /// The reference field behind a relationship name (`Account` -> `AccountId`).
    pub fn relationship(&self, name: &str) -> Option<&FieldDef> {
        self.fields.iter().find(|f| {
            f.relationship_name
                .as_deref()
                .is_some_and(|r| r.eq_ignore_ascii_case(name))
        })
    }
}

/// Field builder shorthands.
fn f(name: &str, ty: SfType) -> FieldDef {
    FieldDef::new(name, ty)
}

fn len(mut d: FieldDef, n: usize) -> FieldDef {
    d.length = n;
    d
}

fn required(mut d: FieldDef) -> FieldDef {
    d.nillable = false;
    d
}

fn read_only(mut d: FieldDef) -> FieldDef {
    d.createable = false;
    d.updateable = false;
    d
}

fn create_only(mut d: FieldDef) -> FieldDef {
    d.updateable = false;
    d
}

fn formula(d: FieldDef, kind: Formula) -> FieldDef {
    let mut d = read_only(d);
    d.formula = Some(kind);
    d
}

fn picklist(name: &str, values: &[&'static str], restricted: bool) -> FieldDef {
    let mut d = f(name, SfType::Picklist);
    d.picklist = values.to_vec();
    d.restricted = restricted;
    d
}

fn defaulted(mut d: FieldDef) -> FieldDef {
    d.nillable = false;
    d.defaulted_on_create = true;
    d
}

fn reference(name: &str, to: &[&'static str]) -> FieldDef {
    let mut d = f(name, SfType::Reference);
    d.reference_to = to.to_vec();
    d
}

fn external_id(name: &str) -> FieldDef {
    let mut d = len(f(name, SfType::String), 64);
    d.unique = true;
    d.external_id = true;
    d
}

/// Fields every object has.
fn system_fields() -> Vec<FieldDef> {
    let mut id = read_only(f("Id", SfType::Id));
    id.nillable = false;
    let mut deleted = read_only(f("IsDeleted", SfType::Boolean));
    deleted.defaulted_on_create = true;
    vec![
        id,
        deleted,
        read_only(f("CreatedDate", SfType::DateTime)),
        read_only(reference("CreatedById", &["User"])),
        read_only(f("LastModifiedDate", SfType::DateTime)),
        read_only(reference("LastModifiedById", &["User"])),
        read_only(f("SystemModstamp", SfType::DateTime)),
    ]
}

/// Salesforce's default opportunity stages, in order, with their probabilities.
pub const OPPORTUNITY_STAGES: [(&str, u32); 10] = [
    ("Prospecting", 10),
    ("Qualification", 10),
    ("Needs Analysis", 20),
    ("Value Proposition", 50),
    ("Id. Decision Makers", 60),
    ("Perception Analysis", 70),
    ("Proposal/Price Quote", 75),
    ("Negotiation/Review", 90),
    ("Closed Won", 100),
    ("Closed Lost", 0),
];

pub const LEAD_STATUSES: [&str; 4] = [
    "Open - Not Contacted",
    "Working - Contacted",
    "Closed - Converted",
    "Closed - Not Converted",
];

const INDUSTRIES: [&str; 10] = [
    "Agriculture",
    "Banking",
    "Communications",
    "Education",
    "Finance",
    "Healthcare",
    "Manufacturing",
    "Retail",
    "Technology",
    "Transportation",
];

/// The accuracy values of a geocoded address.
const GEOCODE_ACCURACY: [&str; 11] = [
    "Address",
    "NearAddress",
    "Block",
    "Street",
    "ExtendedZip",
    "Zip",
    "Neighborhood",
    "City",
    "County",
    "State",
    "Unknown",
];

/// An address with a prefix (`Mailing`, `Other`, `Billing`, `Shipping`, or none for
/// leads): its component fields (the State/Country picklist code fields included),
/// then the compound field (`MailingAddress`), as describe lists them.
fn address(prefix: &str, compound: &'static str) -> Vec<FieldDef> {
    let name = |s: &str| format!("{prefix}{s}");
    let mut fields = vec![
        len(f(&name("Street"), SfType::TextArea), 255),
        len(f(&name("City"), SfType::String), 40),
        len(f(&name("State"), SfType::String), 80),
        len(f(&name("PostalCode"), SfType::String), 20),
        len(f(&name("Country"), SfType::String), 80),
        len(f(&name("StateCode"), SfType::Picklist), 10),
        len(f(&name("CountryCode"), SfType::Picklist), 10),
        f(&name("Latitude"), SfType::Double),
        f(&name("Longitude"), SfType::Double),
        len(
            picklist(&name("GeocodeAccuracy"), &GEOCODE_ACCURACY, false),
            40,
        ),
    ];
    for c in &mut fields {
        c.compound = Some(compound);
    }
    fields.push(read_only(f(compound, SfType::Address)));
    fields
}

/// Contact and Lead fields an admin expects to map, beyond the sync's own.
fn person_details() -> Vec<FieldDef> {
    vec![
        picklist(
            "Salutation",
            &["Mr.", "Ms.", "Mrs.", "Dr.", "Prof.", "Mx."],
            false,
        ),
        f("MobilePhone", SfType::Phone),
        f("Fax", SfType::Phone),
        f("Description", SfType::TextArea),
        f("DoNotCall", SfType::Boolean),
        f("HasOptedOutOfEmail", SfType::Boolean),
        f("HasOptedOutOfFax", SfType::Boolean),
        len(f("EmailBouncedReason", SfType::String), 255),
        f("EmailBouncedDate", SfType::DateTime),
    ]
}

pub fn standard_objects() -> Vec<ObjectDef> {
    let person = |extra: Vec<FieldDef>| {
        let mut v = system_fields();
        v.extend([
            len(f("FirstName", SfType::String), 40),
            required(len(f("LastName", SfType::String), 80)),
            formula(len(f("Name", SfType::String), 121), Formula::FullName),
            f("Email", SfType::Email),
            f("Phone", SfType::Phone),
            len(f("Title", SfType::String), 128),
            reference("OwnerId", &["User"]),
            picklist(
                "LeadSource",
                &["Web", "Phone Inquiry", "Partner Referral", "Other"],
                false,
            ),
        ]);
        v.extend(extra);
        v
    };
    let mut lead_fields = person(vec![
        required(len(f("Company", SfType::String), 255)),
        defaulted(picklist("Status", &LEAD_STATUSES, true)),
        picklist("Industry", &INDUSTRIES, false),
        picklist("Rating", &["Hot", "Warm", "Cold"], false),
        read_only(f("IsConverted", SfType::Boolean)),
        read_only(f("ConvertedDate", SfType::Date)),
        read_only(reference("ConvertedAccountId", &["Account"])),
        read_only(reference("ConvertedContactId", &["Contact"])),
        read_only(reference("ConvertedOpportunityId", &["Opportunity"])),
        external_id("HubSpot_Contact_Id__c"),
        f("Website", SfType::Url),
        f("AnnualRevenue", SfType::Currency),
        f("NumberOfEmployees", SfType::Int),
    ]);
    lead_fields.extend(person_details());
    lead_fields.extend(address("", "Address"));
    let mut contact_fields = person(vec![
        reference("AccountId", &["Account"]),
        external_id("HubSpot_Contact_Id__c"),
        len(f("Department", SfType::String), 80),
        f("HomePhone", SfType::Phone),
        f("OtherPhone", SfType::Phone),
        len(f("AssistantName", SfType::String), 40),
        f("AssistantPhone", SfType::Phone),
        f("Birthdate", SfType::Date),
        reference("ReportsToId", &["Contact"]),
    ]);
    contact_fields.extend(person_details());
    contact_fields.extend(address("Other", "OtherAddress"));
    contact_fields.extend(address("Mailing", "MailingAddress"));
    let mut account_fields = system_fields();
    account_fields.extend([
        required(f("Name", SfType::String)),
        f("Website", SfType::Url),
        f("Phone", SfType::Phone),
        picklist("Industry", &INDUSTRIES, false),
        f("AnnualRevenue", SfType::Currency),
        f("NumberOfEmployees", SfType::Int),
        reference("OwnerId", &["User"]),
        formula(
            len(f("Employee_Band__c", SfType::String), 20),
            Formula::EmployeeBand,
        ),
        external_id("HubSpot_Company_Id__c"),
        f("Fax", SfType::Phone),
        f("Description", SfType::TextArea),
        picklist(
            "Type",
            &[
                "Prospect",
                "Customer - Direct",
                "Customer - Channel",
                "Partner",
                "Other",
            ],
            false,
        ),
    ]);
    account_fields.extend(address("Billing", "BillingAddress"));
    account_fields.extend(address("Shipping", "ShippingAddress"));
    let mut opportunity_fields = system_fields();
    opportunity_fields.extend([
        required(len(f("Name", SfType::String), 120)),
        required(picklist(
            "StageName",
            &OPPORTUNITY_STAGES.map(|(s, _)| s),
            true,
        )),
        required(f("CloseDate", SfType::Date)),
        f("Amount", SfType::Currency),
        reference("AccountId", &["Account"]),
        reference("OwnerId", &["User"]),
        reference("RecordTypeId", &["RecordType"]),
        formula(f("IsClosed", SfType::Boolean), Formula::StageClosed),
        formula(f("IsWon", SfType::Boolean), Formula::StageWon),
        formula(f("Probability", SfType::Percent), Formula::StageProbability),
        external_id("HubSpot_Deal_Id__c"),
    ]);
    let mut role_fields = system_fields();
    role_fields.extend([
        required(reference("OpportunityId", &["Opportunity"])),
        required(reference("ContactId", &["Contact"])),
        picklist(
            "Role",
            &["Decision Maker", "Economic Buyer", "Influencer", "Other"],
            false,
        ),
        f("IsPrimary", SfType::Boolean),
    ]);
    let mut case_fields = system_fields();
    case_fields.extend([
        f("Subject", SfType::String),
        f("Description", SfType::TextArea),
        defaulted(picklist(
            "Status",
            &["New", "Working", "Escalated", "Closed"],
            true,
        )),
        picklist("Priority", &["Low", "Medium", "High"], true),
        picklist("Origin", &["Phone", "Email", "Web"], false),
        reference("ContactId", &["Contact"]),
        reference("AccountId", &["Account"]),
        reference("OwnerId", &["User"]),
        external_id("HubSpot_Ticket_Id__c"),
    ]);
    let mut task_fields = system_fields();
    task_fields.extend([
        f("Subject", SfType::String),
        f("Description", SfType::TextArea),
        f("ActivityDate", SfType::Date),
        defaulted(picklist(
            "Status",
            &[
                "Not Started",
                "In Progress",
                "Completed",
                "Waiting on someone else",
                "Deferred",
            ],
            true,
        )),
        defaulted(picklist("Priority", &["High", "Normal", "Low"], true)),
        picklist("Type", &["Call", "Email", "Meeting", "Other"], false),
        // Set when a Task is made, never after (Salesforce: create, not update).
        create_only(picklist("TaskSubtype", &["Task", "Email", "Call"], true)),
        f("CallDurationInSeconds", SfType::Int),
        picklist("CallType", &["Inbound", "Outbound", "Internal"], true),
        reference("WhoId", &["Lead", "Contact"]),
        reference("WhatId", &["Account", "Opportunity", "Case"]),
        reference("OwnerId", &["User"]),
        external_id("HubSpot_Engagement_Id__c"),
    ]);
    let mut user_fields = system_fields();
    user_fields.extend([
        required(f("Username", SfType::String)),
        f("Email", SfType::Email),
        len(f("FirstName", SfType::String), 40),
        required(len(f("LastName", SfType::String), 80)),
        formula(len(f("Name", SfType::String), 121), Formula::FullName),
        f("IsActive", SfType::Boolean),
    ]);
    let mut campaign_fields = system_fields();
    campaign_fields.extend([
        required(len(f("Name", SfType::String), 80)),
        f("IsActive", SfType::Boolean),
        picklist(
            "Status",
            &["Planned", "In Progress", "Completed", "Aborted"],
            false,
        ),
    ]);
    let mut member_fields = system_fields();
    member_fields.extend([
        required(reference("CampaignId", &["Campaign"])),
        reference("LeadId", &["Lead"]),
        reference("ContactId", &["Contact"]),
        picklist("Status", &["Sent", "Responded"], false),
    ]);
    let mut machine_fields = system_fields();
    machine_fields.extend([
        required(len(f("Name", SfType::String), 80)),
        external_id("Serial_Number__c"),
        len(f("Model__c", SfType::String), 80),
        f("Purchase_Date__c", SfType::Date),
        reference("Account__c", &["Account"]),
        external_id("HubSpot_Machine_Id__c"),
    ]);
    let mut subscription_fields = system_fields();
    subscription_fields.extend([
        required(len(f("Name", SfType::String), 80)),
        external_id("Code__c"),
        len(f("Plan__c", SfType::String), 40),
        f("Seats__c", SfType::Int),
        reference("Account__c", &["Account"]),
        external_id("HubSpot_Subscription_Id__c"),
    ]);
    // Field history tracking: one row per tracked field change, read-only.
    let history = |parent: &str, to: &'static str| {
        let mut v = system_fields();
        v.extend([
            read_only(reference(parent, &[to])),
            read_only(len(f("Field", SfType::String), 255)),
            read_only(len(f("OldValue", SfType::String), 255)),
            read_only(len(f("NewValue", SfType::String), 255)),
        ]);
        v
    };
    // Setup's metadata as rows (`FieldDefinition` has been queryable through the
    // regular API since v45.0): which fields an object has, and which of them keep
    // field history.
    let mut entity_fields = system_fields();
    entity_fields.extend([
        read_only(len(f("QualifiedApiName", SfType::String), 255)),
        read_only(len(f("DeveloperName", SfType::String), 40)),
        read_only(len(f("Label", SfType::String), 40)),
    ]);
    let mut field_definition_fields = system_fields();
    field_definition_fields.extend([
        read_only(len(f("QualifiedApiName", SfType::String), 255)),
        read_only(len(f("DeveloperName", SfType::String), 40)),
        read_only(len(f("DataType", SfType::String), 255)),
        read_only(reference("EntityDefinitionId", &["EntityDefinition"])),
        read_only(f("IsFieldHistoryTracked", SfType::Boolean)),
    ]);
    let object = |name, key_prefix, fields| ObjectDef {
        name,
        key_prefix,
        custom: false,
        createable: true,
        fields,
    };
    let mut user = object("User", "005", user_fields);
    user.createable = false;
    let mut machine = object("Machine__c", "a0M", machine_fields);
    machine.custom = true;
    let mut subscription = object("Subscription__c", "a0S", subscription_fields);
    subscription.custom = true;
    // Real orgs share one key prefix (017) for every history object; the sandbox finds
    // a record's object by its prefix, so each gets its own.
    let prefixes = ["017", "0H1", "0H2", "0H3", "0H4", "0H5"];
    let mut entity = object("EntityDefinition", "0ED", entity_fields);
    entity.createable = false;
    let mut field_definition = object("FieldDefinition", "0FD", field_definition_fields);
    field_definition.createable = false;
    let mut histories: Vec<ObjectDef> = HISTORIES
        .iter()
        .zip(prefixes)
        .map(|((parent_object, name, parent_field), prefix)| {
            let mut h = object(name, prefix, history(parent_field, parent_object));
            h.createable = false;
            h.custom = name.ends_with("__History");
            h
        })
        .collect();
    vec![
        object("Lead", "00Q", lead_fields),
        object("Contact", "003", contact_fields),
        object("Account", "001", account_fields),
        object("Opportunity", "006", opportunity_fields),
        object("OpportunityContactRole", "00K", role_fields),
        object("Case", "500", case_fields),
        object("Task", "00T", task_fields),
        user,
        object("Campaign", "701", campaign_fields),
        object("CampaignMember", "00v", member_fields),
        machine,
        subscription,
        entity,
        field_definition,
    ]
    .into_iter()
    .chain(histories.drain(..))
    .collect()
}

/// Objects with field history tracking: (object, its history object, the field that
/// points at the record). Salesforce names them so: `LeadHistory`, but
/// `OpportunityFieldHistory`, and `Machine__History` with `ParentId` for custom objects.
pub const HISTORIES: [(&str, &str, &str); 6] = [
    ("Lead", "LeadHistory", "LeadId"),
    ("Contact", "ContactHistory", "ContactId"),
    ("Account", "AccountHistory", "AccountId"),
    ("Opportunity", "OpportunityFieldHistory", "OpportunityId"),
    ("Machine__c", "Machine__History", "ParentId"),
    ("Subscription__c", "Subscription__History", "ParentId"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn required_fields_follow_describe_semantics() {
        let objects = standard_objects();
        let required = |o: &str| -> Vec<&str> {
            objects
                .iter()
                .find(|d| d.name == o)
                .map(|d| {
                    d.fields
                        .iter()
                        .filter(|f| f.required())
                        .map(|f| f.name.as_str())
                        .collect()
                })
                .unwrap_or_default()
        };
        assert_eq!(required("Lead"), vec!["LastName", "Company"]);
        assert_eq!(required("Contact"), vec!["LastName"]);
        assert_eq!(
            required("Opportunity"),
            vec!["Name", "StageName", "CloseDate"]
        );
        assert_eq!(required("Task"), Vec::<&str>::new());
    }

    #[test]
    fn relationships_are_named_like_salesforce() {
        let objects = standard_objects();
        let contact = objects.iter().find(|d| d.name == "Contact");
        assert_eq!(
            contact
                .and_then(|c| c.relationship("Account"))
                .map(|f| f.name.as_str()),
            Some("AccountId")
        );
        assert_eq!(
            contact
                .and_then(|c| c.relationship("Owner"))
                .map(|f| f.name.as_str()),
            Some("OwnerId")
        );
        let machine = objects.iter().find(|d| d.name == "Machine__c");
        assert_eq!(
            machine
                .and_then(|m| m.relationship("Account__r"))
                .map(|f| f.name.as_str()),
            Some("Account__c")
        );
    }
}
