//! Ports: the small traits the pipeline talks through. Adapters implement them (the
//! reqwest CRM clients now; DynamoDB, SQS and SQLite with the state layer), and the
//! pipeline can run against any implementation, a fake in a unit test included.

pub mod clock;
pub mod crm;
pub mod ops;
pub mod state;

pub use clock::{Clock, ManualClock, SystemClock};
pub use crm::{
    BatchOutcome, CrmError, EmailEvent, EmailEventPage, ErrorClass, FormSubmission, HsRecord,
    HubSpotApi, InputError, JoinPage, ListJoin, NewRecord, Owner, RecordResult, SalesforceApi,
    SfErrorItem, SubmissionPage,
};
pub use ops::{
    BUCKET_MS, BrokenField, ControlStore, Controls, Pause, SeriesPoint, TelemetryStore, bucket_of,
};
pub use state::{
    ClaimStore, Counts, Cursor, CursorStore, DedupIndex, Delivery, FieldChange, HeldBack, Link,
    LinkStore, Linking, MAX_SEND_DELAY_MS, Outcome, QueueDepth, RELEASED_FOR_ALL, RecordRef,
    RecordStatus, Seen, StatusStore, StoreError, SyncEvent, WorkItem, WorkQueue,
};
